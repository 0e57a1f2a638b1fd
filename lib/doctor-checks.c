/* usbvm doctor: the list of check results every check adds to. A leaf: the checks use it,
 * and it uses none of them. */
#include "doctor.h"

#include <stdarg.h>

void usbvm_checks_clear(UsbvmChecks *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->items[i].name);
        free(c->items[i].found);
        free(c->items[i].fix);
        usbvm_strv_free(c->items[i].log);
    }
    free(c->items);
    *c = (UsbvmChecks){ 0 };
}

size_t usbvm_checks_failed(const UsbvmChecks *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += !c->items[i].ok;
    return n;
}

UsbvmCheck *usbvm_checks_add(UsbvmChecks *c, const char *name, bool ok, const char *fix,
                             const char *found_fmt, ...)
{
    c->items = xrealloc(c->items, (c->n + 1) * sizeof(*c->items));
    UsbvmCheck *k = &c->items[c->n++];
    va_list ap;
    va_start(ap, found_fmt);
    *k = (UsbvmCheck){
        .name = xstrdup(name),
        .ok = ok,
        .found = xvasprintf(found_fmt, ap),
        .fix = fix ? xstrdup(fix) : NULL,
    };
    va_end(ap);
    return k;
}
