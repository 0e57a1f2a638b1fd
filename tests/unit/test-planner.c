/* The planner (lib/planner.c) over a table of situations: devices (plugged, gone, kept,
 * unbound, ambiguous, mounted, held back) x a fixed ruleset x the snapshot of running domains
 * x operations in flight x connected/stopping. Each row states the exact actions; on every row
 * the invariants are checked as properties: never attach what usbvm knows in a domain or has
 * an operation on, never attach a device the host uses, never attach while disconnected or to
 * a domain that does not run, only detach ua-usbvm- aliases, never touch an ambiguous one. */
#include "planner.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static const char RULES[] = "attach id 0781:* to win10 as usb\n"
                            "attach id 0951:* to backup as virtio\n"
                            "attach id 05ac:* to stopped as usb-disk\n"
                            "ignore id 046d:*\n";

typedef struct Row {
    const char *name;
    const char *devs;    /* "0781" VID, then flags: g gone, k keep, u unbound, h held back,
                          * a ambiguous, c clone of device 0, d disk, m mounted, s swap,
                          * H held by dm; "@B.D" bus and device. Devices separated by ',' */
    const char *running; /* running domains, space separated */
    const char *snap;    /* "DOM:WHO:MODE[:B.D]" ',' separated; WHO: device index, "0-1" its
                          * second LUN, x an unknown ua-usbvm- alias, n a foreign device */
    const char *ops;     /* "A:DOM:WHO" / "D:DOM:WHO" ',' separated */
    const char *flags;   /* "noconn", "stopping" */
    const char *expect;  /* sorted actions, "; " separated */
} Row;

#define RUN "win10 backup other"
static const Row ROWS[] = {
    { "plugged, usb rule", "0781", RUN, "", "", "", "attach 0 win10 usb" },
    { "usb, not bound yet", "0781u", RUN, "", "", "", "wait 0 bind" },
    { "virtio, no block device yet", "0951", RUN, "", "", "", "wait 0 block" },
    { "virtio with a disk", "0951d", RUN, "", "", "", "attach 0 backup virtio" },
    { "mounted on the host", "0951dm", RUN, "", "", "", "refuse 0" },
    { "swap on the host", "0951ds", RUN, "", "", "", "refuse 0" },
    { "held by dm", "0951dH", RUN, "", "", "", "refuse 0" },
    { "rule's domain not running", "05acd", RUN, "", "", "", "wait 0 domain" },
    { "ignore rule", "046d", RUN, "", "", "", "" },
    { "no rule", "1234", RUN, "", "", "", "" },
    { "no connection", "0781", RUN, "", "", "noconn", "wait 0 libvirt" },
    { "held back after a refusal", "0781h", RUN, "", "", "", "" },
    { "kept (--present keep)", "0781k", RUN, "", "", "", "" },
    { "ambiguous identity", "0781a", RUN, "", "", "", "wait 0 ambiguous" },
    { "in place", "0781@1.10", RUN, "win10:0:usb:1.10", "", "", "" },
    { "stale address after replug", "0781@1.11", RUN, "win10:0:usb:1.10", "", "",
      "detach win10 0 stale address after a replug" },
    { "virtio in place", "0951d", RUN, "backup:0:virtio", "", "", "" },
    { "virtio, disk gone", "0951", RUN, "backup:0:virtio", "", "",
      "detach backup 0 its block device is gone" },
    { "wrong domain", "0781", RUN, "backup:0:usb", "", "",
      "detach backup 0 the policy sends it elsewhere" },
    { "wrong mode", "0781", RUN, "win10:0:usb-disk", "", "",
      "detach win10 0 the policy sends it elsewhere" },
    { "no rule any more", "1234", RUN, "win10:0:usb", "", "", "detach win10 0 no rule matches it" },
    { "ignore is hands off", "046d", RUN, "win10:0:usb", "", "", "" },
    { "unplugged while attached", "0781g", RUN, "win10:0:usb", "", "", "detach win10 0 unplugged" },
    { "unplugged, nothing attached", "0781g", RUN, "", "", "", "" },
    { "unplugged, detach pending", "0781g", RUN, "win10:0:usb", "D:win10:0", "", "" },
    { "replug seen before the unplug", "0781g@1.10,0781c@1.11", RUN, "win10:0:usb:1.10", "", "",
      "detach win10 0 stale address after a replug" },
    { "unplugged, no connection", "0781g", RUN, "win10:0:usb", "", "noconn", "" },
    { "orphan alias", "", RUN, "win10:x:usb", "", "",
      "detach win10 x its host device is not present" },
    { "foreign device left alone", "", RUN, "win10:n:usb", "", "", "" },
    { "orphan, no connection", "", RUN, "win10:x:usb", "", "noconn", "" },
    { "orphan, detach pending", "", RUN, "win10:x:usb", "D:win10:x", "", "" },
    { "kept device is not an orphan", "0781k", RUN, "win10:0:usb", "", "", "" },
    { "attach in flight", "0781", RUN, "", "A:win10:0", "", "wait 0 inflight" },
    { "virtio attach in flight", "0951d", RUN, "", "A:backup:0", "", "wait 0 inflight" },
    { "moving, detach pending", "0781", RUN, "backup:0:usb", "D:backup:0", "", "" },
    { "moving, removal not confirmed", "0781", RUN, "", "D:backup:0", "", "wait 0 leaving" },
    { "stopping detaches", "0781@1.10", RUN, "win10:0:usb:1.10", "", "stopping",
      "detach win10 0 usbvm watch is stopping" },
    { "stopping attaches nothing", "0781", RUN, "", "", "stopping", "" },
    { "stopping keeps kept", "0781k", RUN, "win10:0:usb", "", "stopping", "" },
    { "stopping keeps ignored", "046d", RUN, "win10:0:usb", "", "stopping", "" },
    { "stopping leaves orphans", "", RUN, "win10:x:usb", "", "stopping", "" },
    { "two devices", "0781,0951d", RUN, "", "", "", "attach 0 win10 usb; attach 1 backup virtio" },
    { "two clones plugged", "0781a,0781ca", RUN, "", "", "", "wait 0 ambiguous; wait 1 ambiguous" },
    { "clones never detach each other", "0781a@1.10,0781ca@1.11", RUN, "win10:0:usb:1.10", "", "",
      "wait 0 ambiguous; wait 1 ambiguous" },
    { "one attaches, one leaves", "0781,1234", RUN, "win10:1:usb", "", "",
      "attach 0 win10 usb; detach win10 1 no rule matches it" },
    { "mounted one refused, other attached", "0951dm,0781", RUN, "", "", "",
      "attach 1 win10 usb; refuse 0" },
    { "second LUN counts as attached", "0951d", RUN, "backup:0-1:virtio", "", "", "" },
    { "both LUNs go on unplug", "0951dg", RUN, "backup:0:virtio,backup:0-1:virtio", "", "",
      "detach backup 0 unplugged; detach backup 0-1 unplugged" },
    { "no address recorded", "0781", RUN, "win10:0:usb", "", "", "" },
    { "in two domains: one goes", "0781", RUN, "win10:0:usb,backup:0:usb", "", "",
      "detach backup 0 the policy sends it elsewhere" },
    { "virtio device in usb place", "0951d", RUN, "win10:0:usb", "", "",
      "detach win10 0 the policy sends it elsewhere" },
    { "virtio device as usb-disk", "0951d", RUN, "backup:0:usb-disk", "", "",
      "detach backup 0 the policy sends it elsewhere" },
    { "domain not running", "0781", "backup", "", "", "", "wait 0 domain" },
    { "gone, nothing running", "0781g", "", "", "", "", "" },
    { "mounted after attach: stays", "0951dm", RUN, "backup:0:virtio", "", "", "" },
    { "mounted and unplugged", "0951dmg", RUN, "backup:0:virtio", "", "",
      "detach backup 0 unplugged" },
    { "usb-disk rule", "05acd", "stopped", "", "", "", "attach 0 stopped usb-disk" },
    { "usb-disk mounted", "05acdm", "stopped", "", "", "", "refuse 0" },
    { "usb-disk without disk", "05ac", "stopped", "", "", "", "wait 0 block" },
    { "unbound but in place", "0781u", RUN, "win10:0:usb", "", "", "" },
    { "held back still leaves", "0781h", RUN, "backup:0:usb", "", "",
      "detach backup 0 the policy sends it elsewhere" },
    { "no rule, unplugged", "1234g", RUN, "win10:0:usb", "", "", "detach win10 0 unplugged" },
    { "ambiguous: no stale detach", "0781a", RUN, "win10:0:usb:1.99", "", "", "wait 0 ambiguous" },
    { "in flight without connection", "0781", RUN, "", "A:win10:0", "noconn", "wait 0 inflight" },
    { "nothing without connection", "0781,0951d,1234,046d", RUN, "", "", "noconn",
      "wait 0 libvirt; wait 1 libvirt" },
    { "orphans in two domains", "", RUN, "win10:x:usb,backup:x:virtio", "", "",
      "detach backup x its host device is not present; detach win10 x its host device is not "
      "present" },
};

/* ---- building a row's input ------------------------------------------------------------------ */

typedef struct Fixture {
    UsbvmDevice *models[8];
    UsbvmPlanDevice devs[8];
    size_t n;
    UsbvmSnapshot snap;
    UsbvmPlanOp ops[8];
    char *op_strings[16];
    size_t n_ops, n_op_strings;
    UsbvmRuleset *rules;
} Fixture;

static const char ORPHAN[] = "ua-usbvm-00000000000000aa";

static UsbvmDevice *make_device(const char *spec, size_t index, UsbvmPlanDevice *pd)
{
    UsbvmDevice *d = xcalloc(1, sizeof(*d));
    unsigned vid = 0;
    assert_int_equal(sscanf(spec, "%4x", &vid), 1);
    d->vendor_id = (uint16_t)vid;
    d->product_id = 0x1;
    d->busnum = 1;
    d->devnum = 10 + (unsigned)index;
    const char *fl = spec + 4; /* flags follow the four hex digits */
    bool clone = strchr(fl, 'c') != NULL, disk = strchr(fl, 'd') != NULL;
    d->serial = xasprintf("SN%zu", clone ? (size_t)0 : index);
    d->port = xasprintf("1-%zu", index + 1);
    const char *at = strchr(fl, '@');
    if (at)
        assert_int_equal(sscanf(at + 1, "%u.%u", &d->busnum, &d->devnum), 2);
    d->identity = usbvm_identity_for(d->vendor_id, d->product_id, d->serial, d->port);
    d->alias = usbvm_alias_for_identity(d->identity);
    if (disk) {
        d->blocks = xcalloc(1, sizeof(*d->blocks));
        d->n_blocks = 1;
        d->blocks[0].type = USBVM_BLOCK_DISK;
        d->blocks[0].devnode = xasprintf("/dev/sd%c", (char)('b' + index));
        if (strchr(fl, 'm'))
            d->blocks[0].mountpoint = xstrdup("/media/stick");
        d->blocks[0].swap = strchr(fl, 's') != NULL;
        if (strchr(fl, 'H'))
            d->blocks[0].holders = usbvm_strv_push(NULL, "dm-0");
    }
    *pd = (UsbvmPlanDevice){ .model = d,
                             .gone = strchr(fl, 'g') != NULL,
                             .keep = strchr(fl, 'k') != NULL,
                             .bound = strchr(fl, 'u') == NULL,
                             .held_back = strchr(fl, 'h') != NULL,
                             .ambiguous = strchr(fl, 'a') != NULL };
    return d;
}

/* The alias a WHO token stands for: "0", "0-1", "x", "n". */
static char *who_alias(const Fixture *f, const char *who)
{
    if (streq(who, "x"))
        return xstrdup(ORPHAN);
    if (streq(who, "n"))
        return xstrdup("hostdev0");
    char *dash = strchr(who, '-');
    size_t i = (size_t)(who[0] - '0');
    assert_true(i < f->n);
    return dash ? xasprintf("%s%s", f->models[i]->alias, dash) : xstrdup(f->models[i]->alias);
}

/* The token a row's expectation uses for an alias. */
static char *alias_who(const Fixture *f, const char *alias)
{
    if (streq(alias, ORPHAN))
        return xstrdup("x");
    for (size_t i = 0; i < f->n; i++) {
        size_t n = strlen(f->models[i]->alias);
        if (strncmp(alias, f->models[i]->alias, n) == 0)
            return xasprintf("%zu%s", i, alias + n);
    }
    return xstrdup(alias);
}

static void split(const char *s, char sep, void (*fn)(Fixture *, char *), Fixture *f)
{
    _cleanup_free_ char *copy = xstrdup(s);
    for (char *save = NULL, *tok = strtok_r(copy, (char[]){ sep, 0 }, &save); tok;
         tok = strtok_r(NULL, (char[]){ sep, 0 }, &save))
        fn(f, tok);
}

static void add_device(Fixture *f, char *spec)
{
    f->models[f->n] = make_device(spec, f->n, &f->devs[f->n]);
    f->n++;
}

static void add_running(Fixture *f, char *name)
{
    UsbvmDomDevList none = { 0 };
    usbvm_snapshot_set_domain(&f->snap, name, &none);
}

static void add_snap(Fixture *f, char *spec)
{
    char *dom = strtok(spec, ":"), *who = strtok(NULL, ":"), *mode = strtok(NULL, ":"),
         *addr = strtok(NULL, ":");
    UsbvmDomDev dd = { 0 };
    dd.domain = xstrdup(dom);
    dd.alias = who_alias(f, who);
    dd.owned = strncmp(dd.alias, "ua-usbvm-", 9) == 0;
    assert_int_equal(usbvm_mode_from_string(mode, &dd.mode), 0);
    dd.kind = dd.mode == USBVM_MODE_USB ? USBVM_DOMDEV_HOSTDEV : USBVM_DOMDEV_DISK;
    if (addr)
        assert_int_equal(sscanf(addr, "%u.%u", &dd.bus, &dd.device), 2);
    usbvm_snapshot_add(&f->snap, &dd);
    usbvm_domdev_clear(&dd);
}

static void add_op(Fixture *f, char *spec)
{
    char *kind = strtok(spec, ":"), *dom = strtok(NULL, ":"), *who = strtok(NULL, ":");
    char *alias = who_alias(f, who);
    char *domain = xstrdup(dom);
    f->op_strings[f->n_op_strings++] = alias;
    f->op_strings[f->n_op_strings++] = domain;
    f->ops[f->n_ops++] = (UsbvmPlanOp){ .kind = kind[0] == 'A' ? USBVM_OP_ATTACH : USBVM_OP_DETACH,
                                        .domain = domain,
                                        .alias = alias };
}

static void fixture_clear(Fixture *f)
{
    for (size_t i = 0; i < f->n; i++)
        usbvm_device_free(f->models[i]);
    for (size_t i = 0; i < f->n_op_strings; i++)
        free(f->op_strings[i]);
    usbvm_snapshot_clear(&f->snap);
    usbvm_ruleset_free(f->rules);
}

/* ---- checking a plan ------------------------------------------------------------------------- */

static const char *wait_name(UsbvmWaitReason w)
{
    static const char *names[] = { "none",      "domain",   "libvirt",  "block",  "bind",
                                   "ambiguous", "host-use", "inflight", "leaving" };
    return names[w];
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *describe(const Fixture *f, const UsbvmPlan *p)
{
    char **lines = xcalloc(p->n + 1, sizeof(*lines));
    for (size_t i = 0; i < p->n; i++) {
        const UsbvmAction *a = &p->actions[i];
        _cleanup_free_ char *who = a->alias ? alias_who(f, a->alias) : NULL;
        switch (a->kind) {
        case USBVM_ACTION_ATTACH:
            lines[i] = xasprintf("attach %zu %s %s", a->device, a->domain,
                                 usbvm_mode_to_string(a->spec->mode));
            break;
        case USBVM_ACTION_DETACH:
            lines[i] = xasprintf("detach %s %s %s", a->domain, who, a->why);
            break;
        case USBVM_ACTION_WAIT:
            lines[i] = xasprintf("wait %zu %s", a->device, wait_name(a->wait));
            break;
        case USBVM_ACTION_REFUSE:
            lines[i] = xasprintf("refuse %zu", a->device);
            break;
        }
    }
    qsort(lines, p->n, sizeof(*lines), cmp_str);
    UsbvmBuf b = { 0 };
    for (size_t i = 0; i < p->n; i++) {
        usbvm_buf_printf(&b, "%s%s", i ? "; " : "", lines[i]);
        free(lines[i]);
    }
    free(lines);
    return usbvm_buf_steal(&b);
}

static void check_properties(const Row *row, const UsbvmPlanInput *in, const UsbvmPlan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        const UsbvmAction *a = &p->actions[i];
        if (a->kind == USBVM_ACTION_DETACH) {
            /* Invariant 3: only usbvm's own. */
            assert_true(strncmp(a->alias, "ua-usbvm-", 9) == 0);
            assert_true(in->connected);
            /* What the guest is asked about: the snapshot's own entry of domain and alias. */
            const UsbvmSnapDomain *sd = usbvm_snapshot_domain(in->snapshot, a->domain);
            assert_non_null(sd);
            assert_true(a->held >= sd->devs.items && a->held < sd->devs.items + sd->devs.n);
            assert_string_equal(a->held->alias, a->alias);
            continue;
        }
        if (a->kind != USBVM_ACTION_ATTACH) {
            continue;
        }
        const UsbvmPlanDevice *d = &in->devices[a->device];
        /* Invariant 1, and never while disconnected, stopping or ambiguous. */
        assert_false(usbvm_plan_host_uses(d->model));
        assert_true(in->connected && !in->stopping && !d->ambiguous && !d->gone && !d->keep);
        assert_non_null(usbvm_snapshot_domain(in->snapshot, a->domain));
        /* Invariant 2: not while usbvm knows of it in a domain or an operation is on it. */
        for (size_t k = 0; k < in->snapshot->n; k++)
            for (size_t m = 0; m < in->snapshot->domains[k].devs.n; m++) {
                const UsbvmDomDev *o = &in->snapshot->domains[k].devs.items[m];
                assert_false(o->owned && usbvm_alias_belongs(o->alias, d->model->alias));
            }
        for (size_t k = 0; k < in->n_ops; k++)
            assert_false(usbvm_alias_belongs(in->ops[k].alias, d->model->alias));
        for (size_t k = i + 1; k < p->n; k++)
            assert_false(p->actions[k].kind == USBVM_ACTION_ATTACH &&
                         streq(p->actions[k].alias, a->alias));
    }
    (void)row;
}

static void test_table(void **state)
{
    size_t rows = 0, actions = 0;
    for (size_t r = 0; r < ELEMENTSOF(ROWS); r++) {
        const Row *row = &ROWS[r];
        Fixture f = { 0 };
        UsbvmRuleDiags diags = { 0 };
        assert_int_equal(usbvm_ruleset_parse("planner", RULES, &f.rules, &diags), 0);
        usbvm_rule_diags_clear(&diags);
        split(row->devs, ',', add_device, &f);
        split(row->running, ' ', add_running, &f);
        split(row->snap, ',', add_snap, &f);
        split(row->ops, ',', add_op, &f);
        UsbvmPlanInput in = { .devices = f.devs,
                              .n_devices = f.n,
                              .rules = f.rules,
                              .snapshot = &f.snap,
                              .ops = f.ops,
                              .n_ops = f.n_ops,
                              .connected = !strstr(row->flags, "noconn"),
                              .stopping = strstr(row->flags, "stopping") != NULL };
        UsbvmPlan plan = { 0 };
        usbvm_plan(&in, &plan);
        _cleanup_free_ char *got = describe(&f, &plan);
        if (!streq(got, row->expect))
            print_error("row %zu '%s':\n  expected: %s\n  got:      %s\n", r + 1, row->name,
                        row->expect, got);
        assert_string_equal(got, row->expect);
        check_properties(row, &in, &plan);
        /* Planning is pure: the same input gives the same plan. */
        UsbvmPlan again = { 0 };
        usbvm_plan(&in, &again);
        _cleanup_free_ char *got2 = describe(&f, &again);
        assert_string_equal(got, got2);
        actions += plan.n;
        usbvm_plan_clear(&plan);
        usbvm_plan_clear(&again);
        fixture_clear(&f);
        rows++;
    }
    print_message("planner: %zu situations, %zu actions, invariants held on every one\n", rows,
                  actions);
    assert_true(rows >= 60);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
