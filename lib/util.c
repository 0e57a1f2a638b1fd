#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <time.h>

static void oom(void)
{
    static const char msg[] = "usbvm: out of memory\n";
    /* The library never prints, except this last word before abort(). */
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
    }
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom();
    return p;
}

void *xcalloc(size_t n, size_t m)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p)
        oom();
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom();
    return q;
}

char *xstrdup(const char *s)
{
    if (!s)
        return NULL;
    char *p = strdup(s);
    if (!p)
        oom();
    return p;
}

char *xstrndup(const char *s, size_t n)
{
    if (!s)
        return NULL;
    char *p = strndup(s, n);
    if (!p)
        oom();
    return p;
}

char *xvasprintf(const char *fmt, va_list ap)
{
    char *s;
    if (vasprintf(&s, fmt, ap) < 0)
        oom();
    return s;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    return s;
}

size_t usbvm_strv_length(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

void usbvm_strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

char **usbvm_strv_push(char **v, const char *s)
{
    size_t n = usbvm_strv_length(v);
    v = xrealloc(v, (n + 2) * sizeof(char *));
    v[n] = xstrdup(s);
    v[n + 1] = NULL;
    return v;
}

bool usbvm_strv_contains(char *const *v, const char *s)
{
    for (size_t i = 0; v && v[i]; i++)
        if (streq(v[i], s))
            return true;
    return false;
}

static int strv_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void usbvm_strv_sort(char **v)
{
    size_t n = usbvm_strv_length(v);
    if (n > 1)
        qsort(v, n, sizeof(*v), strv_cmp);
}

void usbvm_buf_append(UsbvmBuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void usbvm_buf_puts(UsbvmBuf *b, const char *s)
{
    usbvm_buf_append(b, s, strlen(s));
}

void usbvm_buf_printf(UsbvmBuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    usbvm_buf_puts(b, s);
    free(s);
}

char *usbvm_buf_steal(UsbvmBuf *b)
{
    char *s = b->data ? b->data : xstrdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return s;
}

void usbvm_buf_free(UsbvmBuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int usbvm_read_file(const char *path, char **ret, size_t *ret_len)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    return usbvm_read_fd(fd, ret, ret_len);
}

int usbvm_read_fd(int fd, char **ret, size_t *ret_len)
{
    UsbvmBuf b = { 0 };
    char chunk[4096];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int r = -errno;
            usbvm_buf_free(&b);
            return r;
        }
        if (n == 0)
            break;
        usbvm_buf_append(&b, chunk, (size_t)n);
    }
    if (ret_len)
        *ret_len = b.len;
    *ret = usbvm_buf_steal(&b);
    return 0;
}

int usbvm_parse_u64(const char *s, int base, uint64_t *ret)
{
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, base);
    if (errno == ERANGE)
        return -ERANGE;
    if (*end != '\0' || end == s)
        return -EINVAL;
    *ret = v;
    return 0;
}

int usbvm_parse_uint(const char *s, int base, unsigned max, unsigned *ret)
{
    uint64_t v;
    int r = usbvm_parse_u64(s, base, &v);
    if (r < 0)
        return r;
    if (v > max)
        return -ERANGE;
    *ret = (unsigned)v;
    return 0;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not valid; its code point
 * in *ret_cp. */
static size_t utf8_decode(const unsigned char *s, uint32_t *ret_cp)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
        *ret_cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    *ret_cp = cp;
    return n;
}

static size_t utf8_seq(const unsigned char *s)
{
    uint32_t cp;
    return utf8_decode(s, &cp);
}

bool usbvm_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = utf8_seq(p);
        if (!n)
            return false;
        p += n;
    }
    return true;
}

/* Code points a terminal or log viewer acts on or hides instead of showing: C0 and C1
 * controls and DEL (a C1 CSI U+009B starts an escape sequence like ESC [), the line and
 * paragraph separators, and Unicode's format characters (category Cf): the bidi embeddings,
 * overrides and isolates that reorder what follows them (U+202A-U+202E, U+2066-U+2069), the
 * marks U+200E/U+200F/U+061C, zero-width characters, the BOM and the tag characters. */
bool usbvm_char_is_hidden(uint32_t cp)
{
    static const uint32_t ranges[][2] = {
        { 0x0000, 0x001f },   { 0x007f, 0x009f },   { 0x00ad, 0x00ad },   { 0x0600, 0x0605 },
        { 0x061c, 0x061c },   { 0x06dd, 0x06dd },   { 0x070f, 0x070f },   { 0x0890, 0x0891 },
        { 0x08e2, 0x08e2 },   { 0x180e, 0x180e },   { 0x200b, 0x200f },   { 0x2028, 0x202e },
        { 0x2060, 0x2064 },   { 0x2066, 0x206f },   { 0xfeff, 0xfeff },   { 0xfff9, 0xfffb },
        { 0x110bd, 0x110bd }, { 0x110cd, 0x110cd }, { 0x13430, 0x1343f }, { 0x1bca0, 0x1bca3 },
        { 0x1d173, 0x1d17a }, { 0xe0001, 0xe0001 }, { 0xe0020, 0xe007f },
    };
    for (size_t i = 0; i < ELEMENTSOF(ranges); i++)
        if (cp >= ranges[i][0] && cp <= ranges[i][1])
            return true;
    return false;
}

static void escape_char(UsbvmBuf *b, uint32_t cp)
{
    switch (cp) {
    case '\n':
        usbvm_buf_puts(b, "\\n");
        break;
    case '\t':
        usbvm_buf_puts(b, "\\t");
        break;
    case '\r':
        usbvm_buf_puts(b, "\\r");
        break;
    default:
        if (cp < 0x80)
            usbvm_buf_printf(b, "\\x%02x", cp);
        else if (cp <= 0xffff)
            usbvm_buf_printf(b, "\\u%04x", cp);
        else
            usbvm_buf_printf(b, "\\U%08x", cp);
    }
}

static char *escape(const char *s, bool backslash)
{
    UsbvmBuf b = { 0 };
    const unsigned char *p = (const unsigned char *)strempty(s);
    while (*p) {
        uint32_t cp;
        size_t n = utf8_decode(p, &cp);
        if (!n) {
            usbvm_buf_printf(&b, "\\x%02x", *p);
            n = 1;
        } else if (usbvm_char_is_hidden(cp)) {
            escape_char(&b, cp);
        } else if (backslash && cp == '\\') {
            usbvm_buf_puts(&b, "\\\\");
        } else {
            usbvm_buf_append(&b, (const char *)p, n);
        }
        p += n;
    }
    return usbvm_buf_steal(&b);
}

char *usbvm_escape(const char *s)
{
    return escape(s, true);
}

char *usbvm_escape_controls(const char *s)
{
    return escape(s, false);
}

char *usbvm_utf8_sanitize(const char *s)
{
    UsbvmBuf b = { 0 };
    const unsigned char *p = (const unsigned char *)strempty(s);
    while (*p) {
        size_t n = utf8_seq(p);
        if (n) {
            usbvm_buf_append(&b, (const char *)p, n);
            p += n;
        } else {
            usbvm_buf_puts(&b, "\xef\xbf\xbd");
            p++;
        }
    }
    return usbvm_buf_steal(&b);
}

uint64_t usbvm_hash64(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t usbvm_now_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}
