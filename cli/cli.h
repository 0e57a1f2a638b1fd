/* The CLI: global state handed to every verb, the verb table, option parsing and the one
 * output path. */
#pragma once

#include "device.h"
#include "error.h"
#include "util.h"
#include "virt.h"

#include <json-c/json.h>
#include <libvirt/libvirt.h>
#include <popt.h>

typedef struct UsbvmCli {
    const char *connect_uri; /* -c/--connect; NULL: libvirt's default (qemu:///system as root) */
    bool json;               /* --json, before or after the verb */
    int verbosity;           /* -q: -1, default 0, each -v adds 1 */
    const char *progname;
    /* Opened on first use by usbvm_cli_connect(), released at exit. */
    virConnectPtr conn;
} UsbvmCli;

typedef struct UsbvmVerb UsbvmVerb;
typedef int (*UsbvmVerbFn)(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv);

/* What a positional argument is, for completion. */
typedef enum UsbvmArgKind {
    USBVM_ARG_NONE = 0,
    USBVM_ARG_DOMAIN,           /* a running or defined libvirt domain */
    USBVM_ARG_DEVICE,           /* a device specifier (port paths, /dev/sdX, VID:PID) */
    USBVM_ARG_ATTACHED,         /* a device usbvm attached (alias, port) */
    USBVM_ARG_FILE,             /* a path */
    USBVM_ARG_DOMAIN_OR_DEVICE, /* either (doctor's optional first argument) */
} UsbvmArgKind;

/* How many positional arguments a verb takes. */
typedef struct UsbvmArity {
    unsigned min, max;
} UsbvmArity;

/* Two options (by val) that cannot be given together, and why (the usage error says it). */
typedef struct UsbvmExclusive {
    int a, b;
    const char *why;
} UsbvmExclusive;

/* A verb is declared as data, as virsh declares its commands: its options, positional
 * arguments and the options that exclude each other. The parser checks all of it, and --help
 * and the completion are generated from it, so they cannot drift from what is accepted. */
struct UsbvmVerb {
    const char *name; /* exact; no abbreviations */
    UsbvmVerbFn fn;
    const struct poptOption *options; /* verb options: static table, val-coded (no arg ptrs) */
    const char *positionals;   /* synopsis of the positional arguments: "<domain> <device>" */
    const char *summary;       /* one line for --help */
    UsbvmArgKind args[4];      /* positional argument kinds, for completion */
    const UsbvmVerb *subverbs; /* for "rules check|test|show|generate", NULL-name ended */
    bool hidden;               /* not listed in --help (the completion helper) */
    const char *parent;        /* "rules" for a subverb, NULL for a verb */
    UsbvmArity arity;
    int arity_option;                /* when this option is given ... */
    UsbvmArity arity_with;           /* ... the arity is this instead (detach --all <device>) */
    const UsbvmExclusive *exclusive; /* ended by { 0 } */
    const char *help;                /* more text for --help, NULL for none */
};

/* Every verb's option table ends with USBVM_COMMON_OPTIONS then POPT_TABLEEND. Option vals
 * below 100 are the shared ones, handled by the parser itself. */
enum {
    USBVM_OPT_JSON = 1,
    USBVM_OPT_HELP,
    USBVM_OPT_LIVE,
    USBVM_OPT_CONFIG,
    USBVM_OPT_PERSISTENT,
    USBVM_OPT_ALL, /* "--all": shared so that a verb table can name it (detach's arity) */
    USBVM_OPT_VERB_BASE = 100,
};
#define USBVM_COMMON_OPTIONS                                                                       \
    {                                                                                              \
        "json", '\0', POPT_ARG_NONE, NULL, USBVM_OPT_JSON, "Print JSON (schema in usbvm(1))", NULL \
    },                                                                                             \
    {                                                                                              \
        "help", 'h', POPT_ARG_NONE, NULL, USBVM_OPT_HELP, "Show this help", NULL                   \
    }
/* Where a change goes, defined once for attach and detach (virsh's --live/--config/
 * --persistent). --persistent comes first so that the synopsis groups the three. */
#define USBVM_SCOPE_OPTIONS                                                                         \
    { "persistent",                                                                                 \
      '\0',                                                                                         \
      POPT_ARG_NONE,                                                                                \
      NULL,                                                                                         \
      USBVM_OPT_PERSISTENT,                                                                         \
      "Change the running domain and its persistent definition",                                    \
      NULL },                                                                                       \
        { "live", '\0', POPT_ARG_NONE, NULL, USBVM_OPT_LIVE, "Change the running domain (default)", \
          NULL },                                                                                   \
    {                                                                                               \
        "config", '\0', POPT_ARG_NONE, NULL, USBVM_OPT_CONFIG,                                      \
            "Change only the persistent definition", NULL                                           \
    }
#define USBVM_SCOPE_EXCLUSIVE                                                                      \
    { USBVM_OPT_PERSISTENT, USBVM_OPT_LIVE, "--persistent already means --live and --config" },    \
    {                                                                                              \
        USBVM_OPT_PERSISTENT, USBVM_OPT_CONFIG, "--persistent already means --live and --config"   \
    }

extern const UsbvmVerb usbvm_verbs[];

/* What the parser hands a verb: its positional arguments (owned copies) and the scope that
 * --live/--config/--persistent chose (USBVM_ATTACH_LIVE and/or USBVM_ATTACH_CONFIG). */
typedef struct UsbvmCliArgs {
    char **args;
    size_t n;
    unsigned scope;
    int rc; /* the exit code when usbvm_cli_parse() returned false: 0 after --help */
} UsbvmCliArgs;
void usbvm_cli_args_clear(UsbvmCliArgs *a);

/* Called for each verb-specific option (USBVM_OPT_ALL, or val >= USBVM_OPT_VERB_BASE) with its
 * argument (NULL for flags). Returns 0, or the exit code of a usage error it reported. */
typedef int (*UsbvmOptionFn)(UsbvmCli *cli, const UsbvmVerb *verb, int val, const char *arg,
                             void *userdata);
/* Parses a verb's options and arguments as its table declares them: the shared options, the
 * arity, the exclusive options. Returns true when the verb should go on; false when it should
 * return ret->rc (a usage error, already reported, or 0 after --help). */
bool usbvm_cli_parse(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv,
                     UsbvmOptionFn on_option, void *userdata, UsbvmCliArgs *ret);
/* --help for a verb, from its table. */
void usbvm_cli_print_verb_help(FILE *f, const UsbvmVerb *verb);
/* "  name  summary" lines for a verb table. */
void usbvm_cli_print_verbs(FILE *f, const char *prefix, const UsbvmVerb *verbs);

/* Reports a usage error for the verb (NULL: usbvm itself): "usbvm attach: ...; see 'usbvm
 * attach --help'", or one JSON object with --json. Returns USBVM_E_USAGE. */
int usbvm_cli_usage_error(UsbvmCli *cli, const UsbvmVerb *verb, const char *fmt, ...)
    _printf_(3, 4);
/* Reports err: "usbvm: <message>" to stderr, or with --json one object {"failed": true, "msg",
 * "rc"} to stdout. Returns the exit code of its kind. */
int usbvm_cli_error(UsbvmCli *cli, const UsbvmError *err);
void usbvm_cli_warning(UsbvmCli *cli, const char *fmt, ...) _printf_(2, 3);

/* Lazily opened handles. */
virConnectPtr usbvm_cli_connect(UsbvmCli *cli, UsbvmError *err);
/* Connects and looks a domain up by name or UUID; *name becomes its name (new string). */
int usbvm_cli_domain(UsbvmCli *cli, char **name, virDomainPtr *ret, UsbvmError *err);
/* The USB devices plugged in now (sysfs and udev's records), for every verb that looks at them. */
int usbvm_cli_devices(UsbvmDeviceList **ret, UsbvmError *err);
/* The same, then the one device spec names (ret_dev points into *ret_list). */
int usbvm_cli_resolve(UsbvmCli *cli, const char *spec, UsbvmDeviceList **ret_list,
                      UsbvmDevice **ret_dev, UsbvmError *err);

/* ---- The one output path -------------------------------------------------------------
 * A verb builds its answer once, as a json_object. With --json it is printed as is; in text
 * mode it is rendered from the same object through a view that names which keys to show and
 * how. Text and JSON cannot drift because there is only one set of facts. */
typedef enum UsbvmFmt {
    USBVM_FMT_STR,     /* string, escaped for the terminal; null -> "-" */
    USBVM_FMT_INT,     /* integer */
    USBVM_FMT_SIZE,    /* bytes, shown as "14.9G"; null -> "-" */
    USBVM_FMT_BOOL,    /* yes/no */
    USBVM_FMT_LIST,    /* array of strings (or of objects with "name"), joined with "," */
    USBVM_FMT_HEX4,    /* already a hex string; shown as is */
    USBVM_FMT_ESCAPED, /* text escaped already (the rules formatter's ASCII): not escaped twice */
} UsbvmFmt;

typedef struct UsbvmColumn {
    const char *key;    /* key in the object; "a.b" walks nested objects */
    const char *header; /* column header or record label */
    UsbvmFmt fmt;
} UsbvmColumn;

/* Writes obj as one line of JSON to stdout, with a newline. */
void usbvm_out_json(json_object *obj);
/* Renders an array of objects as an aligned table with a header line. */
void usbvm_out_table(json_object *array, const UsbvmColumn *cols, size_t n_cols);
/* Renders one object as "Label:  value" lines, labels aligned. */
void usbvm_out_record(json_object *obj, const UsbvmColumn *fields, size_t n_fields, int indent);
/* Bytes in decimal SI units, as every text view shows sizes: "15.4GB", "466GB", "512B". */
char *usbvm_out_size(uint64_t bytes);
/* Formats one value as the text view shows it; returns a new string. */
char *usbvm_out_format(json_object *value, UsbvmFmt fmt);
/* Adds a string that may be NULL (-> JSON null) and may hold invalid UTF-8 (-> U+FFFD). */
void usbvm_json_add_str(json_object *obj, const char *key, const char *value);
/* Flushes stdout and reports write errors (git's check): returns 0 or exit code 1. */
int usbvm_out_finish(void);

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put)

/* The one answer of attach and detach, with Ansible's keys (schema in usbvm(1)): changed,
 * failed, msg, rc, domain, device, [identity], mode, alias, state, notes. Printed as JSON with
 * --json; otherwise msg (or the error, to stderr). Returns the exit code. */
typedef struct UsbvmAnswer {
    const char *domain;
    const char *device;
    const char *identity; /* attach only; the key is left out when NULL */
    const char *mode;
    const char *alias;
    UsbvmResult res;
    bool have_res;
} UsbvmAnswer;
int usbvm_cli_answer(UsbvmCli *cli, const UsbvmAnswer *a, const char *msg, const UsbvmError *err);

/* Verbs (one file each: cli/cmd-<verb>.c). */
int usbvm_cmd_list(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv);
int usbvm_cmd_show(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv);
int usbvm_cmd_attach(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv);
int usbvm_cmd_detach(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv);
int usbvm_cmd_status(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv);
int usbvm_cmd_rules(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv);
int usbvm_cmd_watch(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv);
int usbvm_cmd_doctor(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv);
int usbvm_cmd_complete(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv);

extern const struct poptOption usbvm_list_options[];
extern const struct poptOption usbvm_show_options[];
extern const struct poptOption usbvm_attach_options[];
extern const struct poptOption usbvm_detach_options[];
extern const struct poptOption usbvm_status_options[];
extern const struct poptOption usbvm_watch_options[];
extern const struct poptOption usbvm_doctor_options[];
extern const struct poptOption usbvm_complete_options[];
extern const UsbvmVerb usbvm_rules_subverbs[];
