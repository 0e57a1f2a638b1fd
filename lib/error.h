/* Errors the library hands to its caller. The library never prints: it fills a UsbvmError
 * with one whole sentence (what failed, why, what to do) and a kind, and returns a negative
 * errno. The CLI prints the sentence once and maps the kind to its exit code. */
#pragma once

#include "util.h"

/* The kinds double as the documented exit codes of usbvm(1). */
typedef enum UsbvmErrKind {
    USBVM_E_OK = 0,
    USBVM_E_FAILED = 1,   /* anything else */
    USBVM_E_USAGE = 2,    /* bad arguments */
    USBVM_E_NOTFOUND = 3, /* device or domain not found, or ambiguous */
    USBVM_E_REFUSED = 4,  /* a safety check refused the action (mounted, in use, ...) */
    USBVM_E_PENDING = 5,  /* detach requested but not yet confirmed by libvirt */
    USBVM_E_LIBVIRT = 6,  /* libvirtd unreachable or libvirt refused */
    USBVM_E_RULES = 7,    /* rules failed to parse */
    USBVM_E_CHECKS = 8,   /* usbvm doctor: at least one check failed */
} UsbvmErrKind;

typedef struct UsbvmError {
    UsbvmErrKind kind;
    int errnum; /* positive errno, 0 when none applies */
    char message[1024];
} UsbvmError;

/* Sets the error (when err is not NULL) and returns -errnum (or -EIO when errnum is 0). The
 * message is a whole sentence without the "usbvm: " prefix. */
int usbvm_error_set(UsbvmError *err, UsbvmErrKind kind, int errnum, const char *fmt, ...)
    _printf_(4, 5);
/* Prefixes an existing message: "cannot attach 1-2.4 to 'win10': " + old message. */
int usbvm_error_prefix(UsbvmError *err, const char *fmt, ...) _printf_(2, 3);
void usbvm_error_clear(UsbvmError *err);
