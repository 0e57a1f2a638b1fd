/* The planner (see planner.h): a pure function from what the daemon knows to what it should
 * do. Level-triggered: it does not care which event led here, so restarts, lost events and
 * reloads end in the same place. */
#include "planner.h"

#include <string.h>

void usbvm_plan_clear(UsbvmPlan *p)
{
    free(p->actions);
    *p = (UsbvmPlan){ 0 };
}

bool usbvm_alias_belongs(const char *domdev_alias, const char *device_alias)
{
    if (!domdev_alias || !device_alias)
        return false;
    size_t n = strlen(device_alias);
    return strncmp(domdev_alias, device_alias, n) == 0 &&
           (domdev_alias[n] == '\0' || domdev_alias[n] == '-');
}

bool usbvm_plan_host_uses(const UsbvmDevice *d)
{
    for (size_t i = 0; i < d->n_blocks; i++) {
        const UsbvmBlock *b = &d->blocks[i];
        if (b->mountpoint || b->swap || (b->holders && b->holders[0]))
            return true;
    }
    return false;
}

static bool has_disk(const UsbvmDevice *d)
{
    for (size_t i = 0; i < d->n_blocks; i++)
        if (d->blocks[i].type == USBVM_BLOCK_DISK)
            return true;
    return false;
}

static UsbvmAction *push(UsbvmPlan *p, UsbvmActionKind kind, size_t device)
{
    p->actions = xrealloc(p->actions, (p->n + 1) * sizeof(*p->actions));
    UsbvmAction *a = &p->actions[p->n++];
    *a = (UsbvmAction){ .kind = kind, .device = device };
    return a;
}

static void wait_for(UsbvmPlan *p, size_t device, const char *domain, UsbvmWaitReason why)
{
    UsbvmAction *a =
        push(p, why == USBVM_WAIT_HOST_USE ? USBVM_ACTION_REFUSE : USBVM_ACTION_WAIT, device);
    a->domain = domain;
    a->wait = why;
}

static const UsbvmPlanOp *op_find(const UsbvmPlanInput *in, UsbvmOpKind kind, const char *domain,
                                  const char *alias)
{
    for (size_t i = 0; i < in->n_ops; i++) {
        const UsbvmPlanOp *o = &in->ops[i];
        if (o->kind != kind)
            continue;
        if (kind == USBVM_OP_ATTACH ? usbvm_alias_belongs(o->alias, alias)
                                    : streq(o->domain, domain) && streq(o->alias, alias))
            return o;
    }
    return NULL;
}

static bool leaving(const UsbvmPlanInput *in, const char *device_alias)
{
    for (size_t i = 0; i < in->n_ops; i++)
        if (in->ops[i].kind == USBVM_OP_DETACH &&
            usbvm_alias_belongs(in->ops[i].alias, device_alias))
            return true;
    return false;
}

/* Asks for a detach unless one is already on its way. */
static void detach(UsbvmPlan *p, const UsbvmPlanInput *in, size_t device, const UsbvmDomDev *o,
                   const char *why)
{
    if (!in->connected || op_find(in, USBVM_OP_DETACH, o->domain, o->alias))
        return;
    UsbvmAction *a = push(p, USBVM_ACTION_DETACH, device);
    a->domain = o->domain;
    a->alias = o->alias;
    a->why = why;
    a->held = o;
}

/* Is another present device the owner of this alias now (a replug seen before the unplug)? */
static bool present_twin(const UsbvmPlanInput *in, size_t self)
{
    const char *alias = in->devices[self].model->alias;
    for (size_t i = 0; i < in->n_devices; i++)
        if (i != self && !in->devices[i].gone && in->devices[i].model &&
            streq(in->devices[i].model->alias, alias))
            return true;
    return false;
}

/* Why a domain device of ours is not where the policy wants it; NULL when it is. */
static const char *misplaced(const UsbvmDomDev *o, const UsbvmDevice *d, const UsbvmRule *rule)
{
    if (!rule)
        return "no rule matches it";
    const UsbvmAttachSpec *spec = usbvm_rule_spec(rule);
    if (!streq(o->domain, usbvm_rule_domain(rule)) || o->mode != spec->mode)
        return "the policy sends it elsewhere";
    /* Same place, same mode: is it still the same plug? */
    if (o->kind == USBVM_DOMDEV_HOSTDEV && o->bus && o->device &&
        (o->bus != d->busnum || o->device != d->devnum))
        return "stale address after a replug";
    if (o->kind == USBVM_DOMDEV_DISK && spec->mode != USBVM_MODE_USB && !has_disk(d))
        return "its block device is gone";
    return NULL;
}

typedef struct Owned {
    const UsbvmDomDev *items[16];
    size_t n;
} Owned;

static void find_owned(const UsbvmPlanInput *in, const char *alias, Owned *ret)
{
    ret->n = 0;
    for (size_t k = 0; k < in->snapshot->n; k++) {
        const UsbvmDomDevList *l = &in->snapshot->domains[k].devs;
        for (size_t i = 0; i < l->n && ret->n < ELEMENTSOF(ret->items); i++)
            if (l->items[i].owned && usbvm_alias_belongs(l->items[i].alias, alias))
                ret->items[ret->n++] = &l->items[i];
    }
}

/* Everything of a present device that the policy wants elsewhere goes back first; returns
 * whether it is (also) in place. */
static bool plan_misplaced(UsbvmPlan *p, const UsbvmPlanInput *in, size_t i, const Owned *owned,
                           const UsbvmRule *rule, bool *ret_moving)
{
    const UsbvmDevice *d = in->devices[i].model;
    bool in_place = false;
    *ret_moving = false;
    for (size_t k = 0; k < owned->n; k++) {
        const UsbvmDomDev *o = owned->items[k];
        const char *why = in->stopping ? "usbvm watch is stopping" : misplaced(o, d, rule);
        if (!why) {
            in_place = true;
            continue;
        }
        detach(p, in, i, o, why);
        *ret_moving = true;
    }
    return in_place;
}

static void plan_attach(UsbvmPlan *p, const UsbvmPlanInput *in, size_t i, const UsbvmRule *rule)
{
    const UsbvmPlanDevice *dev = &in->devices[i];
    const char *domain = usbvm_rule_domain(rule);
    const UsbvmAttachSpec *spec = usbvm_rule_spec(rule);
    if (!usbvm_snapshot_domain(in->snapshot, domain))
        return wait_for(p, i, domain, USBVM_WAIT_DOMAIN);
    if (usbvm_mode_is_disk(spec->mode) && !has_disk(dev->model))
        return wait_for(p, i, domain, USBVM_WAIT_BLOCK);
    if (spec->mode == USBVM_MODE_USB && !dev->bound)
        return wait_for(p, i, domain, USBVM_WAIT_BIND);
    if (usbvm_plan_host_uses(dev->model))
        return wait_for(p, i, domain, USBVM_WAIT_HOST_USE);
    if (dev->held_back)
        return;
    UsbvmAction *a = push(p, USBVM_ACTION_ATTACH, i);
    a->domain = domain;
    a->alias = dev->model->alias;
    a->spec = spec;
}

static void plan_device(UsbvmPlan *p, const UsbvmPlanInput *in, size_t i)
{
    const UsbvmPlanDevice *dev = &in->devices[i];
    const UsbvmDevice *d = dev->model;
    if (!d || dev->keep || (dev->gone && present_twin(in, i)))
        return;
    Owned owned;
    find_owned(in, d->alias, &owned);
    if (dev->gone) {
        /* Unplugged: nothing of it may stay in a domain. Detach by alias needs nothing from
         * the vanished device. */
        for (size_t k = 0; k < owned.n; k++)
            detach(p, in, i, owned.items[k], "unplugged");
        return;
    }
    if (dev->ambiguous)
        return wait_for(p, i, NULL, USBVM_WAIT_AMBIGUOUS); /* not even a detach: which is it? */
    const UsbvmRule *rule = in->rules ? usbvm_ruleset_match(in->rules, d) : NULL;
    if (rule && usbvm_rule_target(rule) == USBVM_TARGET_IGNORE)
        return; /* hands off, whatever its state */
    if (op_find(in, USBVM_OP_ATTACH, NULL, d->alias))
        return wait_for(p, i, NULL, USBVM_WAIT_IN_FLIGHT);
    bool moving;
    bool in_place = plan_misplaced(p, in, i, &owned, rule, &moving);
    if (!rule || moving || in_place || in->stopping)
        return;
    if (leaving(in, d->alias))
        return wait_for(p, i, NULL, USBVM_WAIT_LEAVING);
    if (!in->connected)
        return wait_for(p, i, usbvm_rule_domain(rule), USBVM_WAIT_LIBVIRT);
    plan_attach(p, in, i, rule);
}

static bool alias_known(const UsbvmPlanInput *in, const char *alias)
{
    for (size_t i = 0; i < in->n_devices; i++)
        if (in->devices[i].model && usbvm_alias_belongs(alias, in->devices[i].model->alias))
            return true;
    return false;
}

void usbvm_plan(const UsbvmPlanInput *in, UsbvmPlan *ret)
{
    UsbvmPlan p = { 0 };
    for (size_t i = 0; i < in->n_devices; i++)
        plan_device(&p, in, i);
    /* Our aliases that belong to no device we know: the device went while nobody was looking
     * (daemon down, events lost). */
    for (size_t k = 0; in->connected && !in->stopping && k < in->snapshot->n; k++) {
        const UsbvmDomDevList *l = &in->snapshot->domains[k].devs;
        for (size_t i = 0; i < l->n; i++)
            if (l->items[i].owned && !alias_known(in, l->items[i].alias))
                detach(&p, in, USBVM_PLAN_NO_DEVICE, &l->items[i],
                       "its host device is not present");
    }
    *ret = p;
}
