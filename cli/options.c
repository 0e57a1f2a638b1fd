/* Option parsing and --help for every verb, driven by the verb table: the shared options,
 * the arity and the options that exclude each other are data, so no verb repeats a parse
 * prologue and --help shows exactly what the parser accepts. */
#include "cli.h"

#include <string.h>

#define HELP_WIDTH    79
#define OPTION_COLUMN 26

void usbvm_cli_args_clear(UsbvmCliArgs *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->args[i]);
    free(a->args);
    a->args = NULL;
    a->n = 0;
}

static const struct poptOption *option_by_val(const UsbvmVerb *verb, int val)
{
    for (const struct poptOption *o = verb->options; o && (o->longName || o->shortName); o++)
        if (o->val == val)
            return o;
    return NULL;
}

static bool takes_arg(const struct poptOption *o)
{
    return (o->argInfo & POPT_ARG_MASK) != POPT_ARG_NONE;
}

/* Options seen so far, by val, to check exclusions and the arity option after parsing. */
typedef struct Seen {
    int vals[32];
    size_t n;
} Seen;

static bool seen_has(const Seen *s, int val)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->vals[i] == val)
            return true;
    return false;
}

static int check_exclusive(UsbvmCli *cli, const UsbvmVerb *verb, const Seen *seen)
{
    for (const UsbvmExclusive *x = verb->exclusive; x && x->a; x++)
        if (seen_has(seen, x->a) && seen_has(seen, x->b)) {
            const struct poptOption *a = option_by_val(verb, x->a), *b = option_by_val(verb, x->b);
            return usbvm_cli_usage_error(cli, verb, "--%s and --%s cannot be given together%s%s",
                                         a ? a->longName : "?", b ? b->longName : "?",
                                         x->why ? ": " : "", x->why ? x->why : "");
        }
    return 0;
}

static int check_arity(UsbvmCli *cli, const UsbvmVerb *verb, const Seen *seen, const char **args,
                       size_t n)
{
    UsbvmArity a = verb->arity;
    if (verb->arity_option && seen_has(seen, verb->arity_option))
        a = verb->arity_with;
    if (n < a.min)
        return usbvm_cli_usage_error(cli, verb, "missing argument: expected %s", verb->positionals);
    if (n > a.max) {
        if (a.max > 1 && verb->args[0] == USBVM_ARG_DOMAIN)
            return usbvm_cli_usage_error(cli, verb,
                                         "unexpected argument '%s'; if the domain name has a "
                                         "space, quote it: '%s %s'",
                                         args[a.max], args[0], args[1]);
        return usbvm_cli_usage_error(cli, verb, "unexpected argument '%s'", args[a.max]);
    }
    return 0;
}

static unsigned scope_flags(const Seen *seen)
{
    bool live = seen_has(seen, USBVM_OPT_LIVE), config = seen_has(seen, USBVM_OPT_CONFIG),
         persistent = seen_has(seen, USBVM_OPT_PERSISTENT);
    unsigned flags = 0;
    if (live || persistent || !config)
        flags |= USBVM_ATTACH_LIVE;
    if (config || persistent)
        flags |= USBVM_ATTACH_CONFIG;
    return flags;
}

/* One option; returns 0 to go on, or an exit code (HELP_SHOWN after --help). */
#define HELP_SHOWN (-1)
static int handle_option(UsbvmCli *cli, const UsbvmVerb *verb, poptContext ctx, int rc,
                         UsbvmOptionFn on_option, void *userdata, Seen *seen)
{
    if (rc < -1)
        return usbvm_cli_usage_error(cli, verb, "%s: %s",
                                     poptBadOption(ctx, POPT_BADOPTION_NOALIAS), poptStrerror(rc));
    if (seen->n < ELEMENTSOF(seen->vals))
        seen->vals[seen->n++] = rc;
    switch (rc) {
    case USBVM_OPT_JSON:
        cli->json = true;
        return 0;
    case USBVM_OPT_HELP:
        usbvm_cli_print_verb_help(stdout, verb);
        return HELP_SHOWN;
    case USBVM_OPT_LIVE:
    case USBVM_OPT_CONFIG:
    case USBVM_OPT_PERSISTENT:
        return 0;
    }
    _cleanup_free_ char *arg = poptGetOptArg(ctx);
    if ((rc < USBVM_OPT_VERB_BASE && rc != USBVM_OPT_ALL) || !on_option)
        return usbvm_cli_usage_error(cli, verb, "unexpected option"); /* a table mistake */
    return on_option(cli, verb, rc, arg, userdata);
}

bool usbvm_cli_parse(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv,
                     UsbvmOptionFn on_option, void *userdata, UsbvmCliArgs *ret)
{
    /* argv[0] is the verb name; popt skips it. POSIXMEHARDER is off so options may follow
     * positional arguments ("usbvm attach win10 1-2.4 --json"); "--" ends options. */
    poptContext ctx = poptGetContext(verb->name, argc, argv, verb->options, 0);
    Seen seen = { .n = 0 };
    int rc, r = 0;
    while (r == 0 && (rc = poptGetNextOpt(ctx)) != -1)
        r = handle_option(cli, verb, ctx, rc, on_option, userdata, &seen);
    const char **args = poptGetArgs(ctx);
    size_t n = 0;
    while (args && args[n])
        n++;
    if (r == 0)
        r = check_exclusive(cli, verb, &seen);
    if (r == 0)
        r = check_arity(cli, verb, &seen, args, n);
    *ret = (UsbvmCliArgs){ .scope = scope_flags(&seen), .rc = r == HELP_SHOWN ? 0 : r };
    if (r == 0 && n > 0) {
        ret->args = xcalloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++)
            ret->args[i] = xstrdup(args[i]);
        ret->n = n;
    }
    poptFreeContext(ctx);
    return r == 0;
}

/* ---- --help ---------------------------------------------------------------------------- */

static char *verb_fullname(const UsbvmVerb *verb)
{
    return verb->parent ? xasprintf("%s %s", verb->parent, verb->name) : xstrdup(verb->name);
}

void usbvm_cli_print_verbs(FILE *f, const char *prefix, const UsbvmVerb *verbs)
{
    size_t w = 0;
    for (const UsbvmVerb *v = verbs; v->name; v++)
        if (!v->hidden && strlen(v->name) > w)
            w = strlen(v->name);
    for (const UsbvmVerb *v = verbs; v->name; v++)
        if (!v->hidden)
            fprintf(f, "%s%-*s  %s\n", prefix, (int)w, v->name, v->summary);
}

/* Writes words, wrapping at HELP_WIDTH with the continuation lines indented by indent; *col
 * is the current column. */
static void put_word(FILE *f, const char *word, size_t indent, size_t *col)
{
    size_t n = strlen(word);
    if (*col > indent && *col + 1 + n > HELP_WIDTH) {
        fprintf(f, "\n%*s", (int)indent, "");
        *col = indent;
    } else if (*col > 0 && *col != indent) {
        fputc(' ', f);
        (*col)++;
    }
    fputs(word, f);
    *col += n;
}

static void put_text(FILE *f, const char *text, size_t indent, size_t *col)
{
    _cleanup_free_ char *copy = xstrdup(text);
    char *save = NULL;
    for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
        put_word(f, w, indent, col);
}

static bool excludes(const UsbvmVerb *verb, int a, int b)
{
    for (const UsbvmExclusive *x = verb->exclusive; x && x->a; x++)
        if ((x->a == a && x->b == b) || (x->a == b && x->b == a))
            return true;
    return false;
}

static char *option_synopsis(const struct poptOption *o)
{
    _cleanup_free_ char *s = o->shortName ? xasprintf("-%c|--%s", o->shortName, o->longName)
                                          : xasprintf("--%s", o->longName);
    return takes_arg(o) ? xasprintf("%s %s", s, o->argDescrip ? o->argDescrip : "ARG") : xstrdup(s);
}

/* "usbvm attach <domain> <device> [-m|--mode MODE] [--persistent|--live|--config] ...":
 * consecutive options that exclude each other share one bracket. */
static void print_synopsis(FILE *f, const UsbvmVerb *verb)
{
    _cleanup_free_ char *name = verb_fullname(verb);
    _cleanup_free_ char *head = xasprintf("Usage: usbvm %s", name);
    size_t indent = strlen(head) + 1, col = 0;
    put_text(f, head, 0, &col);
    if (verb->positionals && verb->positionals[0])
        put_text(f, verb->positionals, indent, &col);
    const struct poptOption *o = verb->options;
    while (o && (o->longName || o->shortName)) {
        UsbvmBuf b = { 0 };
        usbvm_buf_puts(&b, "[");
        const struct poptOption *first = o;
        for (; o->longName || o->shortName; o++) {
            if (o != first && !excludes(verb, first->val, o->val))
                break;
            _cleanup_free_ char *s = option_synopsis(o);
            usbvm_buf_printf(&b, "%s%s", o == first ? "" : "|", s);
        }
        usbvm_buf_puts(&b, "]");
        _cleanup_free_ char *word = usbvm_buf_steal(&b);
        if (first->val != USBVM_OPT_HELP)
            put_word(f, word, indent, &col);
    }
    fputc('\n', f);
}

static void print_options(FILE *f, const UsbvmVerb *verb)
{
    fprintf(f, "\nOptions:\n");
    for (const struct poptOption *o = verb->options; o && (o->longName || o->shortName); o++) {
        _cleanup_free_ char *sh = o->shortName ? xasprintf("-%c, ", o->shortName) : xstrdup("    ");
        _cleanup_free_ char *left =
            xasprintf("  %s--%s%s%s", sh, o->longName, takes_arg(o) ? " " : "",
                      takes_arg(o) ? (o->argDescrip ? o->argDescrip : "ARG") : "");
        size_t col = strlen(left);
        fputs(left, f);
        if (col + 2 > OPTION_COLUMN) {
            fprintf(f, "\n%*s", OPTION_COLUMN, "");
        } else {
            fprintf(f, "%*s", (int)(OPTION_COLUMN - col), "");
        }
        col = OPTION_COLUMN;
        put_text(f, o->descrip ? o->descrip : "", OPTION_COLUMN, &col);
        fputc('\n', f);
    }
}

void usbvm_cli_print_verb_help(FILE *f, const UsbvmVerb *verb)
{
    print_synopsis(f, verb);
    fprintf(f, "\n%s\n", verb->summary);
    if (verb->help) {
        size_t col = 0;
        fputc('\n', f);
        put_text(f, verb->help, 0, &col);
        fputc('\n', f);
    }
    if (verb->subverbs) {
        fprintf(f, "\nSubverbs:\n");
        usbvm_cli_print_verbs(f, "  ", verb->subverbs);
        _cleanup_free_ char *name = verb_fullname(verb);
        fprintf(f, "\n'usbvm %s SUBVERB --help' shows its options.\n", name);
        return;
    }
    print_options(f, verb);
}
