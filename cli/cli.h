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
    /* Opened on first use by usbvm_cli_udev() / usbvm_cli_connect(), released at exit. */
    struct udev *udev;
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

struct UsbvmVerb {
    const char *name; /* exact; no abbreviations */
    UsbvmVerbFn fn;
    const struct poptOption *options; /* verb options: static table, val-coded (no arg ptrs) */
    const char *usage;                /* "<domain> <device> [--mode MODE]" */
    const char *summary;              /* one line for --help */
    UsbvmArgKind args[4];             /* positional argument kinds, for completion */
    const UsbvmVerb *subverbs;        /* for "rules check|test|show|generate", NULL-name ended */
    bool hidden;                      /* not listed in --help (the completion helper) */
    const char *parent;               /* "rules" for a subverb, NULL for a verb */
};

/* Every verb's option table ends with USBVM_COMMON_OPTIONS then POPT_TABLEEND. Option vals
 * below 100 are reserved for the common ones. */
enum { USBVM_OPT_JSON = 1, USBVM_OPT_HELP = 2, USBVM_OPT_VERB_BASE = 100 };
#define USBVM_COMMON_OPTIONS                                                                       \
    {                                                                                              \
        "json", '\0', POPT_ARG_NONE, NULL, USBVM_OPT_JSON, "Print JSON (schema in usbvm(1))", NULL \
    },                                                                                             \
    {                                                                                              \
        "help", 'h', POPT_ARG_NONE, NULL, USBVM_OPT_HELP, "Show this help", NULL                   \
    }

extern const UsbvmVerb usbvm_verbs[];

/* Starts option parsing for a verb (or subverb). */
poptContext usbvm_cli_popt(const UsbvmVerb *verb, int argc, const char **argv);
/* Returns the next verb-specific option val (>= USBVM_OPT_VERB_BASE), 0 when options are
 * done, or a negative exit code (already reported, or -0 for --help which printed help:
 * returns -1000 for "help printed, exit 0"). Handles --json and --help itself. */
#define USBVM_CLI_HELP_SHOWN (-1000)
int usbvm_cli_next_option(UsbvmCli *cli, const UsbvmVerb *verb, poptContext ctx);
/* Collects the remaining positional arguments; reports a usage error and returns -2 unless
 * min <= count <= max. */
int usbvm_cli_args(const UsbvmVerb *verb, poptContext ctx, size_t min, size_t max,
                   const char ***ret, size_t *ret_n);
/* Converts the return of usbvm_cli_next_option/args into an exit code. */
static inline int usbvm_cli_exit_from_parse(int r)
{
    return r == USBVM_CLI_HELP_SHOWN ? 0 : -r;
}

/* Reports a usage error for the verb: "usbvm attach: ...; see 'usbvm attach --help'". */
int usbvm_cli_usage_error(const UsbvmVerb *verb, const char *fmt, ...) _printf_(2, 3);
/* Prints "usbvm: <message>" to stderr (text mode) and returns the exit code of its kind. In
 * JSON mode verbs print their own object with "failed": true, "msg", "rc" instead. */
int usbvm_cli_error(UsbvmCli *cli, const UsbvmError *err);
void usbvm_cli_warning(UsbvmCli *cli, const char *fmt, ...) _printf_(2, 3);

/* Lazily opened handles. */
struct udev *usbvm_cli_udev(UsbvmCli *cli, UsbvmError *err);
virConnectPtr usbvm_cli_connect(UsbvmCli *cli, UsbvmError *err);

/* ---- The one output path -------------------------------------------------------------
 * A verb builds its answer once, as a json_object. With --json it is printed as is; in text
 * mode it is rendered from the same object through a view that names which keys to show and
 * how. Text and JSON cannot drift because there is only one set of facts. */
typedef enum UsbvmFmt {
    USBVM_FMT_STR,  /* string, escaped for the terminal; null -> "-" */
    USBVM_FMT_INT,  /* integer */
    USBVM_FMT_SIZE, /* bytes, shown as "14.9G"; null -> "-" */
    USBVM_FMT_BOOL, /* yes/no */
    USBVM_FMT_LIST, /* array of strings (or of objects with "name"), joined with "," */
    USBVM_FMT_HEX4, /* already a hex string; shown as is */
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
