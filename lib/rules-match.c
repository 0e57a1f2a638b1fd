/* The matcher: does a rule apply to a device, and if not, which attribute failed.
 *
 * Each attribute compares the rule's values R with the device's values D:
 *   one-of          some r matches some d
 *   all-of          every r matches some d
 *   none-of         no r matches any d
 *   equals          every r matches some d and every d matches some r
 *   equals-ordered  |R| == |D| and r[i] matches d[i] for every i
 *   match-all       every d matches some r
 * Single-valued device attributes (id, serial, name, vendor-name, via-port,
 * with-connect-type) have exactly one value; a string the device does not report is "", as
 * in USBGuard. with-interface has one value per interface descriptor; fs-type, fs-label and
 * fs-uuid have one value per block device (disk or partition) that reports one. */
#include "rules-internal.h"

#include <string.h>

static bool dev_is_hub(const UsbvmDevice *d)
{
    return d->is_hub || d->dev_class == 0x09;
}

static const char *dev_string(const UsbvmDevice *d, UsbvmAttrKind k)
{
    switch (k) {
    case USBVM_ATTR_SERIAL:
        return d->serial;
    case USBVM_ATTR_NAME:
        return d->product;
    case USBVM_ATTR_VENDOR_NAME:
        return d->manufacturer;
    case USBVM_ATTR_VIA_PORT:
        return d->port;
    case USBVM_ATTR_WITH_CONNECT_TYPE:
        return d->connect_type;
    default:
        return NULL;
    }
}

static const char *block_string(const UsbvmBlock *b, UsbvmAttrKind k)
{
    return k == USBVM_ATTR_FS_TYPE    ? b->fs_type
           : k == USBVM_ATTR_FS_LABEL ? b->fs_label
                                      : b->fs_uuid;
}

static bool is_fs(UsbvmAttrKind k)
{
    return k == USBVM_ATTR_FS_TYPE || k == USBVM_ATTR_FS_LABEL || k == USBVM_ATTR_FS_UUID;
}

static size_t dev_count(const UsbvmDevice *d, UsbvmAttrKind k)
{
    if (k == USBVM_ATTR_WITH_INTERFACE)
        return d->n_interfaces;
    if (is_fs(k)) {
        size_t n = 0;
        for (size_t i = 0; i < d->n_blocks; i++)
            n += block_string(&d->blocks[i], k) != NULL;
        return n;
    }
    return 1;
}

/* The i-th string value of the device for a string attribute. */
static const char *dev_item_string(const UsbvmDevice *d, UsbvmAttrKind k, size_t i)
{
    if (is_fs(k)) {
        for (size_t j = 0; j < d->n_blocks; j++) {
            const char *s = block_string(&d->blocks[j], k);
            if (s && i-- == 0)
                return s;
        }
        return "";
    }
    return strempty(dev_string(d, k));
}

static bool item_match(const UsbvmDevice *d, UsbvmAttrKind k, const UsbvmAttrValue *rv, size_t i)
{
    switch (k) {
    case USBVM_ATTR_ID:
        return (rv->id.any_vid || rv->id.vid == d->vendor_id) &&
               (rv->id.any_pid || rv->id.pid == d->product_id);
    case USBVM_ATTR_WITH_INTERFACE: {
        const UsbvmInterface *it = &d->interfaces[i];
        return rv->iface.cls == it->cls &&
               (rv->iface.any_subclass || rv->iface.subclass == it->subclass) &&
               (rv->iface.any_protocol || rv->iface.protocol == it->protocol);
    }
    case USBVM_ATTR_VIA_PORT: {
        /* usbvm extension: "1-2.*" matches every device behind port 1-2. No device has a
         * literal '*' in its port path, so USBGuard rules keep their meaning. */
        const char *port = strempty(d->port);
        size_t n = strlen(rv->str);
        if (n > 0 && rv->str[n - 1] == '*')
            return strncmp(port, rv->str, n - 1) == 0 && strlen(port) >= n;
        return streq(port, rv->str);
    }
    default:
        return streq(dev_item_string(d, k, i), rv->str);
    }
}

static bool some_device_item(const UsbvmDevice *d, const UsbvmAttr *a, const UsbvmAttrValue *rv,
                             size_t nd)
{
    for (size_t i = 0; i < nd; i++)
        if (item_match(d, a->kind, rv, i))
            return true;
    return false;
}

static bool some_rule_value(const UsbvmDevice *d, const UsbvmAttr *a, size_t i)
{
    for (size_t j = 0; j < a->n_values; j++)
        if (item_match(d, a->kind, &a->values[j], i))
            return true;
    return false;
}

static bool cmp_holds(UsbvmCmpOp op, uint64_t have, uint64_t want)
{
    switch (op) {
    case USBVM_CMP_LT:
        return have < want;
    case USBVM_CMP_LE:
        return have <= want;
    case USBVM_CMP_GT:
        return have > want;
    case USBVM_CMP_GE:
        return have >= want;
    case USBVM_CMP_EQ:
        return have == want;
    case USBVM_CMP_NE:
        return have != want;
    default:
        return false;
    }
}

/* size: some whole disk with a medium (size > 0) satisfies every comparison. Partitions do
 * not count. */
static bool size_match(const UsbvmDevice *d, const UsbvmAttr *a)
{
    for (size_t i = 0; i < d->n_blocks; i++) {
        const UsbvmBlock *b = &d->blocks[i];
        if (b->type != USBVM_BLOCK_DISK || b->size == 0)
            continue;
        bool ok = true;
        for (size_t j = 0; j < a->n_size && ok; j++)
            ok = cmp_holds(a->size[j].op, b->size, a->size[j].bytes);
        if (ok)
            return true;
    }
    return false;
}

static bool attr_match(const UsbvmAttr *a, const UsbvmDevice *d)
{
    if (a->kind == USBVM_ATTR_SIZE)
        return size_match(d, a);
    size_t nd = dev_count(d, a->kind);
    switch (a->op) {
    case USBVM_SETOP_ONE_OF:
        for (size_t j = 0; j < a->n_values; j++)
            if (some_device_item(d, a, &a->values[j], nd))
                return true;
        return false;
    case USBVM_SETOP_ALL_OF:
        for (size_t j = 0; j < a->n_values; j++)
            if (!some_device_item(d, a, &a->values[j], nd))
                return false;
        return true;
    case USBVM_SETOP_NONE_OF:
        for (size_t j = 0; j < a->n_values; j++)
            if (some_device_item(d, a, &a->values[j], nd))
                return false;
        return true;
    case USBVM_SETOP_EQUALS:
        for (size_t j = 0; j < a->n_values; j++)
            if (!some_device_item(d, a, &a->values[j], nd))
                return false;
        for (size_t i = 0; i < nd; i++)
            if (!some_rule_value(d, a, i))
                return false;
        return true;
    case USBVM_SETOP_EQUALS_ORDERED:
        if (nd != a->n_values)
            return false;
        for (size_t i = 0; i < nd; i++)
            if (!item_match(d, a->kind, &a->values[i], i))
                return false;
        return true;
    case USBVM_SETOP_MATCH_ALL:
        for (size_t i = 0; i < nd; i++)
            if (!some_rule_value(d, a, i))
                return false;
        return true;
    default:
        return false;
    }
}

static const UsbvmAttr *first_failing(const UsbvmRule *r, const UsbvmDevice *d)
{
    for (int k = 0; k < _USBVM_ATTR_MAX; k++)
        if (r->attrs[k] && !attr_match(r->attrs[k], d))
            return r->attrs[k];
    return NULL;
}

bool usbvm_rule_matches(const UsbvmRule *r, const UsbvmDevice *d)
{
    return !dev_is_hub(d) && !first_failing(r, d);
}

const UsbvmRule *usbvm_ruleset_match(const UsbvmRuleset *rs, const UsbvmDevice *d)
{
    if (!rs || dev_is_hub(d))
        return NULL;
    for (size_t i = 0; i < rs->n; i++)
        if (!first_failing(rs->rules[i], d))
            return rs->rules[i];
    return NULL;
}

static const char *missing_noun(UsbvmAttrKind k)
{
    switch (k) {
    case USBVM_ATTR_SERIAL:
        return "no serial number";
    case USBVM_ATTR_NAME:
        return "no product name";
    case USBVM_ATTR_VENDOR_NAME:
        return "no manufacturer name";
    case USBVM_ATTR_WITH_CONNECT_TYPE:
        return "no connect type";
    case USBVM_ATTR_WITH_INTERFACE:
        return "no interfaces";
    case USBVM_ATTR_FS_TYPE:
        return "no block device with a filesystem type";
    case USBVM_ATTR_FS_LABEL:
        return "no block device with a filesystem label";
    case USBVM_ATTR_FS_UUID:
        return "no block device with a filesystem UUID";
    default:
        return "no value";
    }
}

static void describe_device(UsbvmBuf *b, const UsbvmDevice *d, UsbvmAttrKind k)
{
    if (k == USBVM_ATTR_ID) {
        usbvm_buf_printf(b, "%04x:%04x", d->vendor_id, d->product_id);
        return;
    }
    if (k == USBVM_ATTR_SIZE) {
        bool any = false;
        for (size_t i = 0; i < d->n_blocks; i++) {
            const UsbvmBlock *bl = &d->blocks[i];
            if (bl->type != USBVM_BLOCK_DISK || bl->size == 0)
                continue;
            usbvm_buf_puts(b, any ? ", " : "a disk of ");
            usbvm_rules_format_size(b, bl->size);
            if (bl->size % 1000 != 0 || bl->size >= 1000000)
                usbvm_buf_printf(b, " (%llu bytes)", (unsigned long long)bl->size);
            any = true;
        }
        if (!any)
            usbvm_buf_puts(b, "no disk with a medium");
        return;
    }
    if (!is_fs(k) && k != USBVM_ATTR_WITH_INTERFACE) {
        const char *s = dev_string(d, k);
        if (!s)
            usbvm_buf_puts(b, missing_noun(k));
        else
            usbvm_rules_format_string(b, s);
        return;
    }
    size_t n = dev_count(d, k);
    if (n == 0) {
        usbvm_buf_puts(b, missing_noun(k));
        return;
    }
    usbvm_buf_puts(b, "{ ");
    for (size_t i = 0; i < n; i++) {
        if (k == USBVM_ATTR_WITH_INTERFACE)
            usbvm_buf_printf(b, "%02x:%02x:%02x", d->interfaces[i].cls, d->interfaces[i].subclass,
                             d->interfaces[i].protocol);
        else
            usbvm_rules_format_string(b, dev_item_string(d, k, i));
        usbvm_buf_puts(b, " ");
    }
    usbvm_buf_puts(b, "}");
}

bool usbvm_rule_explain(const UsbvmRule *r, const UsbvmDevice *d, char **ret_reason)
{
    if (dev_is_hub(d)) {
        if (ret_reason)
            *ret_reason = xstrdup("hub: usbvm never passes a hub to a guest");
        return false;
    }
    const UsbvmAttr *a = first_failing(r, d);
    if (!a) {
        if (ret_reason)
            *ret_reason = NULL;
        return true;
    }
    if (ret_reason) {
        UsbvmBuf b = { 0 };
        usbvm_buf_printf(&b, "%s: device has ", usbvm_attr_name(a->kind));
        describe_device(&b, d, a->kind);
        usbvm_buf_puts(&b, ", rule wants ");
        UsbvmBuf want = { 0 };
        usbvm_rules_format_attr(&want, a);
        usbvm_buf_puts(&b, want.data + strlen(usbvm_attr_name(a->kind)) + 1);
        usbvm_buf_free(&want);
        *ret_reason = usbvm_buf_steal(&b);
    }
    return false;
}

const char *usbvm_rule_failed_attribute(const UsbvmRule *r, const UsbvmDevice *d)
{
    if (dev_is_hub(d))
        return "hub";
    const UsbvmAttr *a = first_failing(r, d);
    return a ? usbvm_attr_name(a->kind) : NULL;
}
