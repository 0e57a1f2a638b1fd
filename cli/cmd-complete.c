/* "usbvm __complete WORDS...": the shell completion asks the binary (as virsh does), so verbs,
 * options and choices come from the same tables that parse them and cannot drift.
 * WORDS are the command-line words after "usbvm", the last one being the word under the
 * cursor (possibly empty). Candidates are printed one per line; the special line
 * "__files__" asks the shell to complete file names.
 *
 * Bash inserts a candidate as it is, to be parsed by the shell as the user typed it, so every
 * candidate is printed in a form that reads back as itself (invariant 7): characters that mean
 * something to the shell are backslash-escaped; a word with a control character, a non-ASCII
 * byte or a newline is left out, as no escaping of those survives being typed and edited
 * safely. Such a device is still reachable by its port path. */
#include "cli.h"
#include "virt.h"

#include <string.h>

const struct poptOption usbvm_complete_options[] = {
    USBVM_COMMON_OPTIONS,
    POPT_TABLEEND,
};

/* The word as the shell must be given it to read it back as the word itself, or NULL when
 * it cannot be offered safely. */
static char *shell_escape(const char *word)
{
    static const char plain[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                "0123456789_-.,:/=@+%";
    if (!*word)
        return NULL;
    UsbvmBuf b = { 0 };
    for (const unsigned char *p = (const unsigned char *)word; *p; p++) {
        if (*p < 0x20 || *p >= 0x7f) {
            free(usbvm_buf_steal(&b));
            return NULL;
        }
        /* '=' and ':' stay plain: the script completes with -n =: so they break no word. */
        if (!strchr(plain, *p))
            usbvm_buf_puts(&b, "\\");
        usbvm_buf_append(&b, (const char *)p, 1);
    }
    return usbvm_buf_steal(&b);
}

static void candidate(const char *cur, const char *word)
{
    if (!word)
        return;
    _cleanup_free_ char *esc = shell_escape(word);
    if (esc && strncmp(esc, cur, strlen(cur)) == 0)
        printf("%s\n", esc);
}

static bool takes_arg(const struct poptOption *o)
{
    unsigned t = o->argInfo & POPT_ARG_MASK;
    return t != POPT_ARG_NONE && t != POPT_ARG_VAL;
}

static const struct poptOption *find_option(const struct poptOption *opts, const char *word)
{
    for (const struct poptOption *o = opts; o && (o->longName || o->shortName); o++) {
        if (word[0] == '-' && word[1] == '-' && o->longName && streq(word + 2, o->longName))
            return o;
        if (word[0] == '-' && word[1] && !word[2] && o->shortName == word[1])
            return o;
    }
    return NULL;
}

static void complete_choices(const char *cur, const char *descrip)
{
    if (!descrip)
        return;
    if (streq(descrip, "PATH") || streq(descrip, "FILE") || streq(descrip, "DIR")) {
        printf("__files__\n");
        return;
    }
    if (!strchr(descrip, '|'))
        return;
    _cleanup_free_ char *copy = xstrdup(descrip);
    char *save = NULL;
    for (char *c = strtok_r(copy, "|", &save); c; c = strtok_r(NULL, "|", &save))
        candidate(cur, c);
}

static void complete_domains(UsbvmCli *cli, const char *cur)
{
    UsbvmError err = { 0 };
    virConnectPtr conn = usbvm_cli_connect(cli, &err);
    if (!conn)
        return;
    virDomainPtr *doms = NULL;
    int n = virConnectListAllDomains(conn, &doms, 0);
    for (int i = 0; i < n; i++) {
        candidate(cur, virDomainGetName(doms[i]));
        virDomainFree(doms[i]);
    }
    free(doms);
}

static void complete_devices(const char *cur)
{
    UsbvmError err = { 0 };
    _cleanup_(usbvm_device_list_freep) UsbvmDeviceList *list = NULL;
    if (usbvm_device_list_enumerate(&usbvm_host_paths_default, &list, &err) < 0)
        return;
    for (size_t i = 0; i < list->n; i++) {
        const UsbvmDevice *d = list->devices[i];
        if (d->is_hub)
            continue;
        candidate(cur, d->port);
        for (size_t b = 0; b < d->n_blocks; b++)
            if (d->blocks[b].type == USBVM_BLOCK_DISK)
                candidate(cur, d->blocks[b].devnode);
        if (d->serial && *d->serial) {
            _cleanup_free_ char *s = xasprintf("serial=%s", d->serial);
            candidate(cur, s);
        }
    }
}

static void complete_attached(UsbvmCli *cli, const char *cur)
{
    UsbvmError err = { 0 };
    virConnectPtr conn = usbvm_cli_connect(cli, &err);
    if (conn) {
        _cleanup_(usbvm_domdev_list_freep) UsbvmDomDevList *l = NULL;
        if (usbvm_virt_list_domdevs(conn, &l, &err) >= 0)
            for (size_t i = 0; i < l->n; i++)
                if (l->items[i].owned)
                    candidate(cur, l->items[i].alias);
    }
    complete_devices(cur);
}

static void complete_positional(UsbvmCli *cli, const UsbvmVerb *verb, size_t positional,
                                const char *cur)
{
    UsbvmArgKind kind = positional < ELEMENTSOF(verb->args) ? verb->args[positional] : 0;
    switch (kind) {
    case USBVM_ARG_DOMAIN:
        complete_domains(cli, cur);
        break;
    case USBVM_ARG_DEVICE:
        complete_devices(cur);
        break;
    case USBVM_ARG_ATTACHED:
        complete_attached(cli, cur);
        break;
    case USBVM_ARG_DOMAIN_OR_DEVICE:
        complete_domains(cli, cur);
        complete_devices(cur);
        break;
    case USBVM_ARG_FILE:
        printf("__files__\n");
        break;
    case USBVM_ARG_NONE:
        break;
    }
}

/* The words after the verb up to the cursor: count positionals, notice an option waiting
 * for its value, then complete that value, an option or a positional argument. */
static void complete_verb_words(UsbvmCli *cli, const UsbvmVerb *verb, int i, int argc,
                                const char **argv)
{
    const char *cur = argv[argc - 1];
    size_t positional = 0;
    const struct poptOption *pending = NULL;
    bool dashdash = false;
    for (; i < argc - 1; i++) {
        if (pending) {
            pending = NULL;
            continue;
        }
        if (!dashdash && streq(argv[i], "--")) {
            dashdash = true;
            continue;
        }
        if (!dashdash && argv[i][0] == '-' && argv[i][1]) {
            const struct poptOption *o = find_option(verb->options, argv[i]);
            if (o && takes_arg(o) && !strchr(argv[i], '='))
                pending = o;
            continue;
        }
        positional++;
    }
    if (pending) {
        complete_choices(cur, pending->argDescrip);
    } else if (!dashdash && cur[0] == '-') {
        for (const struct poptOption *o = verb->options; o && (o->longName || o->shortName); o++)
            if (o->longName) {
                _cleanup_free_ char *s = xasprintf("--%s", o->longName);
                candidate(cur, s);
            }
    } else {
        complete_positional(cli, verb, positional, cur);
    }
}

static const UsbvmVerb *find_verb(const UsbvmVerb *verbs, const char *name)
{
    for (const UsbvmVerb *v = verbs; v && v->name; v++)
        if (streq(v->name, name))
            return v;
    return NULL;
}

/* Global options before the verb, or the verb itself, under the cursor. */
static void complete_global(const char *cur, const char *prev)
{
    static const char *const global_long[] = { "--connect", "--json",    "--verbose",
                                               "--quiet",   "--version", "--help" };
    if (cur[0] == '-') {
        for (size_t k = 0; k < ELEMENTSOF(global_long); k++)
            candidate(cur, global_long[k]);
        return;
    }
    if (prev && (streq(prev, "-c") || streq(prev, "--connect")))
        return;
    for (const UsbvmVerb *v = usbvm_verbs; v->name; v++)
        if (!v->hidden)
            candidate(cur, v->name);
}

int usbvm_cmd_complete(UsbvmCli *cli, const UsbvmVerb *self, int argc, const char **argv)
{
    /* argv[0] is "__complete"; an optional "--" follows. */
    int i = 1;
    if (i < argc && streq(argv[i], "--"))
        i++;
    if (i >= argc)
        return 0;
    const char *cur = argv[argc - 1];
    int last = argc - 1; /* index of the word under the cursor */
    while (i < last && argv[i][0] == '-') {
        if (streq(argv[i], "-c") || streq(argv[i], "--connect"))
            i++;
        i++;
    }
    if (i == last) {
        complete_global(cur, i > 0 ? argv[i - 1] : NULL);
        return 0;
    }
    const UsbvmVerb *verb = find_verb(usbvm_verbs, argv[i++]);
    if (!verb || verb->hidden)
        return 0;
    if (verb->subverbs) {
        if (i == last) {
            for (const UsbvmVerb *v = verb->subverbs; v->name; v++)
                candidate(cur, v->name);
            return 0;
        }
        verb = find_verb(verb->subverbs, argv[i++]);
        if (!verb)
            return 0;
    }
    complete_verb_words(cli, verb, i, argc, argv);
    return 0;
}
