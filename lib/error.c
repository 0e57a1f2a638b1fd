#include "error.h"

#include <errno.h>
#include <string.h>

int usbvm_error_set(UsbvmError *err, UsbvmErrKind kind, int errnum, const char *fmt, ...)
{
    if (errnum < 0)
        errnum = -errnum;
    if (err) {
        va_list ap;
        err->kind = kind;
        err->errnum = errnum;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    }
    return errnum ? -errnum : -EIO;
}

int usbvm_error_prefix(UsbvmError *err, const char *fmt, ...)
{
    if (!err)
        return -EIO;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    size_t plen = strnlen(prefix, sizeof(prefix));
    size_t olen = strnlen(err->message, sizeof(err->message));
    if (plen + olen + 1 > sizeof(err->message))
        olen = sizeof(err->message) - plen - 1;
    memmove(err->message + plen, err->message, olen);
    memcpy(err->message, prefix, plen);
    err->message[plen + olen] = '\0';
    return err->errnum ? -err->errnum : -EIO;
}

void usbvm_error_clear(UsbvmError *err)
{
    if (!err)
        return;
    err->kind = USBVM_E_OK;
    err->errnum = 0;
    err->message[0] = '\0';
}
