/* Small helpers shared by the library and the CLI: cleanup attributes, strings, escaping. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _unused_       __attribute__((unused))
#define _nonnull_      __attribute__((nonnull))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* Hand a pointer over to someone else: the cleanup attribute then sees NULL. */
#define TAKE_PTR(p)                                                                                \
    ({                                                                                             \
        __typeof__(p) _p_ = (p);                                                                   \
        (p) = NULL;                                                                                \
        _p_;                                                                                       \
    })

/* Declares func##p(type **p), calling func(*p) when *p is not NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                    \
    static inline void func##p(type *p)                                                            \
    {                                                                                              \
        if (*p)                                                                                    \
            func(*p);                                                                              \
    }

static inline void freep(void *p)
{
    free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void fclosep(FILE **f)
{
    if (*f)
        fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

static inline void closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline bool streq(const char *a, const char *b)
{
    return a && b && __builtin_strcmp(a, b) == 0;
}
static inline bool streq_ptr(const char *a, const char *b)
{
    return (!a && !b) || streq(a, b);
}
static inline const char *strempty(const char *s)
{
    return s ? s : "";
}

/* Value of a hex digit, or -1. */
static inline int usbvm_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Allocation that cannot fail quietly: on OOM the process aborts (as libvirt and GLib do). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) _printf_(1, 2);
char *xvasprintf(const char *fmt, va_list ap) _printf_(1, 0);

/* NULL-terminated string vectors. */
typedef char **UsbvmStrv;
size_t usbvm_strv_length(char *const *v);
void usbvm_strv_free(char **v);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, usbvm_strv_free)
#define _cleanup_strv_free_ _cleanup_(usbvm_strv_freep)
/* Appends a copy of s; returns the new vector. */
char **usbvm_strv_push(char **v, const char *s);
bool usbvm_strv_contains(char *const *v, const char *s);
/* Sorts v in place, bytewise (strcmp): readdir and hash orders made stable for output. */
void usbvm_strv_sort(char **v);

/* A growable byte buffer, always NUL-terminated. */
typedef struct UsbvmBuf {
    char *data;
    size_t len, cap;
} UsbvmBuf;
void usbvm_buf_append(UsbvmBuf *b, const char *s, size_t n);
void usbvm_buf_puts(UsbvmBuf *b, const char *s);
void usbvm_buf_printf(UsbvmBuf *b, const char *fmt, ...) _printf_(2, 3);
char *usbvm_buf_steal(UsbvmBuf *b); /* never NULL */
void usbvm_buf_free(UsbvmBuf *b);

/* Read a whole (small) file; returns -errno. Trailing newline kept. */
int usbvm_read_file(const char *path, char **ret, size_t *ret_len);
/* The same from an open fd, from where it stands to its end. */
int usbvm_read_fd(int fd, char **ret, size_t *ret_len);

/* Strict number parsing: the whole string must be a number in range; returns -EINVAL/-ERANGE. */
int usbvm_parse_u64(const char *s, int base, uint64_t *ret);
int usbvm_parse_uint(const char *s, int base, unsigned max, unsigned *ret);

/* Escaping of untrusted strings (USB descriptors, labels, serials) before they reach a log
 * or a terminal: printable ASCII and valid UTF-8 stay; control characters (C0, DEL, C1) become
 * \n, \t, \r, \xNN or \u00NN, Unicode format characters (bidi overrides and isolates,
 * zero-width characters, BOM: see usbvm_char_is_hidden) become \uNNNN, invalid UTF-8 bytes
 * become \xNN, and a backslash is doubled. Always returns a new string. */
char *usbvm_escape(const char *s);
/* The same for a line already built from escaped parts: a backslash stays as it is, so
 * nothing is escaped twice, and whatever slipped through unescaped still cannot end the
 * line, move the cursor or reorder the text. The log layer passes every record through it. */
char *usbvm_escape_controls(const char *s);
/* True for a code point usbvm_escape() escapes rather than prints. */
bool usbvm_char_is_hidden(uint32_t cp);
/* Valid UTF-8 for JSON: invalid sequences become U+FFFD. Always returns a new string. */
char *usbvm_utf8_sanitize(const char *s);
bool usbvm_utf8_valid(const char *s);

/* 64-bit FNV-1a, used to derive stable aliases from device identities. */
uint64_t usbvm_hash64(const void *data, size_t n);

/* Monotonic clock in microseconds. */
uint64_t usbvm_now_usec(void);
