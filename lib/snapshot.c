/* The snapshot of running domains' USB devices (see snapshot.h). */
#include "snapshot.h"

#include <string.h>

void usbvm_snapshot_clear(UsbvmSnapshot *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->domains[i].name);
        usbvm_domdev_list_clear(&s->domains[i].devs);
    }
    free(s->domains);
    *s = (UsbvmSnapshot){ 0 };
}

UsbvmSnapDomain *usbvm_snapshot_domain(const UsbvmSnapshot *s, const char *name)
{
    for (size_t i = 0; name && i < s->n; i++)
        if (streq(s->domains[i].name, name))
            return &s->domains[i];
    return NULL;
}

void usbvm_snapshot_set_domain(UsbvmSnapshot *s, const char *name, UsbvmDomDevList *devs)
{
    UsbvmSnapDomain *d = usbvm_snapshot_domain(s, name);
    if (!d) {
        s->domains = xrealloc(s->domains, (s->n + 1) * sizeof(*s->domains));
        d = &s->domains[s->n++];
        *d = (UsbvmSnapDomain){ .name = xstrdup(name) };
    }
    usbvm_domdev_list_clear(&d->devs);
    d->devs = *devs;
    *devs = (UsbvmDomDevList){ 0 };
}

void usbvm_snapshot_drop_domain(UsbvmSnapshot *s, const char *name)
{
    UsbvmSnapDomain *d = usbvm_snapshot_domain(s, name);
    if (!d)
        return;
    free(d->name);
    usbvm_domdev_list_clear(&d->devs);
    size_t i = (size_t)(d - s->domains);
    memmove(d, d + 1, (s->n - i - 1) * sizeof(*d));
    s->n--;
}

void usbvm_snapshot_add(UsbvmSnapshot *s, const UsbvmDomDev *dd)
{
    UsbvmSnapDomain *d = usbvm_snapshot_domain(s, dd->domain);
    if (d)
        usbvm_domdev_copy(usbvm_domdev_list_add(&d->devs), dd);
}

bool usbvm_snapshot_has(const UsbvmSnapshot *s, const char *domain, const char *alias)
{
    const UsbvmSnapDomain *d = usbvm_snapshot_domain(s, domain);
    for (size_t i = 0; d && i < d->devs.n; i++)
        if (streq(d->devs.items[i].alias, alias))
            return true;
    return false;
}

bool usbvm_snapshot_remove(UsbvmSnapshot *s, const char *domain, const char *alias)
{
    UsbvmSnapDomain *d = usbvm_snapshot_domain(s, domain);
    for (size_t i = 0; d && i < d->devs.n; i++) {
        UsbvmDomDev *dd = &d->devs.items[i];
        if (!streq(dd->alias, alias))
            continue;
        usbvm_domdev_clear(dd);
        memmove(dd, dd + 1, (d->devs.n - i - 1) * sizeof(*dd));
        d->devs.n--;
        return true;
    }
    return false;
}

void usbvm_snapshot_take(UsbvmSnapshot *s, UsbvmSnapshot *src)
{
    usbvm_snapshot_clear(s);
    *s = *src;
    *src = (UsbvmSnapshot){ 0 };
}

UsbvmDomDevList *usbvm_snapshot_flatten(const UsbvmSnapshot *s)
{
    UsbvmDomDevList *l = xcalloc(1, sizeof(*l));
    for (size_t k = 0; k < s->n; k++)
        for (size_t i = 0; i < s->domains[k].devs.n; i++)
            usbvm_domdev_copy(usbvm_domdev_list_add(l), &s->domains[k].devs.items[i]);
    return l;
}
