/* The one output path: verbs build a json_object; --json prints it, text mode renders it
 * through a view (columns or labelled fields). Untrusted strings are escaped for the
 * terminal here, once. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

void usbvm_json_add_str(json_object *obj, const char *key, const char *value)
{
    /* Raw bytes go in, so the text view can escape them exactly (\xff); the JSON printer
     * replaces invalid UTF-8 with U+FFFD on the way out. */
    json_object_object_add(obj, key, value ? json_object_new_string(value) : NULL);
}

static json_object *sanitized_string(json_object *s)
{
    const char *v = json_object_get_string(s);
    if (usbvm_utf8_valid(v))
        return NULL;
    _cleanup_free_ char *clean = usbvm_utf8_sanitize(v);
    return json_object_new_string(clean);
}

/* Makes every string in the tree valid UTF-8, in place. */
static void json_sanitize(json_object *o)
{
    if (json_object_is_type(o, json_type_object)) {
        json_object_object_foreach(o, key, value)
        {
            json_object *clean = NULL;
            if (json_object_is_type(value, json_type_string))
                clean = sanitized_string(value);
            if (clean)
                json_object_object_add(o, key, clean);
            else
                json_sanitize(value);
        }
    } else if (json_object_is_type(o, json_type_array)) {
        size_t n = json_object_array_length(o);
        for (size_t i = 0; i < n; i++) {
            json_object *value = json_object_array_get_idx(o, i);
            json_object *clean = NULL;
            if (json_object_is_type(value, json_type_string))
                clean = sanitized_string(value);
            if (clean)
                json_object_array_put_idx(o, i, clean);
            else
                json_sanitize(value);
        }
    }
}

void usbvm_out_json(json_object *obj)
{
    json_sanitize(obj);
    fputs(json_object_to_json_string_ext(obj,
                                         JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
          stdout);
    fputc('\n', stdout);
}

static json_object *lookup(json_object *obj, const char *key)
{
    /* "a.b" walks nested objects. */
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", key);
    json_object *cur = obj;
    char *save = NULL;
    for (char *part = strtok_r(buf, ".", &save); part; part = strtok_r(NULL, ".", &save)) {
        if (!cur || !json_object_is_type(cur, json_type_object))
            return NULL;
        if (!json_object_object_get_ex(cur, part, &cur))
            return NULL;
    }
    return cur;
}

char *usbvm_out_size(uint64_t bytes)
{
    /* Decimal SI units, as disk makers, lsblk --bytes users and the rules' size attribute
     * count: 1 GB = 10^9 bytes (usbvm(1) states it). */
    static const char *const units[] = { "B", "kB", "MB", "GB", "TB", "PB", "EB" };
    double v = (double)bytes;
    unsigned u = 0;
    while (v >= 1000.0 && u < ELEMENTSOF(units) - 1) {
        v /= 1000.0;
        u++;
    }
    if (u == 0)
        return xasprintf("%" PRIu64 "B", bytes);
    return xasprintf(v < 10.0 ? "%.1f%s" : "%.0f%s", v, units[u]);
}

static bool ascii_printable(const char *s)
{
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c < 0x20 || *c >= 0x7f)
            return false;
    return true;
}

char *usbvm_out_format(json_object *value, UsbvmFmt fmt)
{
    if (!value)
        return xstrdup("-");
    switch (fmt) {
    case USBVM_FMT_SIZE:
        return usbvm_out_size((uint64_t)json_object_get_int64(value));
    case USBVM_FMT_INT:
        return xasprintf("%" PRId64, json_object_get_int64(value));
    case USBVM_FMT_BOOL:
        return xstrdup(json_object_get_boolean(value) ? "yes" : "no");
    case USBVM_FMT_LIST: {
        if (!json_object_is_type(value, json_type_array))
            return usbvm_out_format(value, USBVM_FMT_STR);
        size_t n = json_object_array_length(value);
        if (n == 0)
            return xstrdup("-");
        UsbvmBuf b = { 0 };
        for (size_t i = 0; i < n; i++) {
            json_object *e = json_object_array_get_idx(value, i);
            json_object *name = NULL;
            if (json_object_is_type(e, json_type_object))
                json_object_object_get_ex(e, "name", &name);
            else
                name = e;
            _cleanup_free_ char *s = usbvm_out_format(name, USBVM_FMT_STR);
            if (i)
                usbvm_buf_puts(&b, ",");
            usbvm_buf_puts(&b, s);
        }
        return usbvm_buf_steal(&b);
    }
    case USBVM_FMT_ESCAPED:
        /* Only printable ASCII can pass as is; anything else is escaped after all. */
        if (json_object_is_type(value, json_type_string) &&
            ascii_printable(json_object_get_string(value)))
            return xstrdup(json_object_get_string(value));
        return usbvm_out_format(value, USBVM_FMT_STR);
    case USBVM_FMT_STR:
    case USBVM_FMT_HEX4:
    default:
        if (json_object_is_type(value, json_type_string))
            return usbvm_escape(json_object_get_string(value));
        if (json_object_is_type(value, json_type_boolean))
            return xstrdup(json_object_get_boolean(value) ? "yes" : "no");
        return usbvm_escape(json_object_to_json_string_ext(value, JSON_C_TO_STRING_PLAIN));
    }
}

/* Display width of a UTF-8 string (code points; good enough for device strings). */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xc0) != 0x80)
            w++;
    return w;
}

static void pad(size_t n)
{
    for (size_t i = 0; i < n; i++)
        fputc(' ', stdout);
}

void usbvm_out_table(json_object *array, const UsbvmColumn *cols, size_t n_cols)
{
    size_t n_rows = array ? json_object_array_length(array) : 0;
    char **cells = xcalloc((n_rows + 1) * n_cols, sizeof(char *));
    size_t *width = xcalloc(n_cols, sizeof(size_t));
    for (size_t c = 0; c < n_cols; c++) {
        cells[c] = xstrdup(cols[c].header);
        width[c] = text_width(cells[c]);
    }
    for (size_t r = 0; r < n_rows; r++) {
        json_object *row = json_object_array_get_idx(array, r);
        for (size_t c = 0; c < n_cols; c++) {
            char *s = usbvm_out_format(lookup(row, cols[c].key), cols[c].fmt);
            cells[(r + 1) * n_cols + c] = s;
            if (text_width(s) > width[c])
                width[c] = text_width(s);
        }
    }
    for (size_t r = 0; r < n_rows + 1; r++) {
        for (size_t c = 0; c < n_cols; c++) {
            const char *s = cells[r * n_cols + c];
            fputs(s, stdout);
            if (c + 1 < n_cols)
                pad(width[c] - text_width(s) + 2);
        }
        fputc('\n', stdout);
    }
    for (size_t i = 0; i < (n_rows + 1) * n_cols; i++)
        free(cells[i]);
    free(cells);
    free(width);
}

void usbvm_out_record(json_object *obj, const UsbvmColumn *fields, size_t n_fields, int indent)
{
    size_t w = 0;
    for (size_t i = 0; i < n_fields; i++)
        if (text_width(fields[i].header) > w)
            w = text_width(fields[i].header);
    for (size_t i = 0; i < n_fields; i++) {
        _cleanup_free_ char *s = usbvm_out_format(lookup(obj, fields[i].key), fields[i].fmt);
        pad((size_t)indent);
        printf("%s:", fields[i].header);
        pad(w - text_width(fields[i].header) + 1);
        printf("%s\n", s);
    }
}

int usbvm_cli_answer(UsbvmCli *cli, const UsbvmAnswer *a, const char *msg, const UsbvmError *err)
{
    int rc = err ? (err->kind ? (int)err->kind : USBVM_E_FAILED) : 0;
    _cleanup_(json_object_putp) json_object *o = json_object_new_object();
    json_object_object_add(o, "changed", json_object_new_boolean(a->have_res && a->res.changed));
    json_object_object_add(o, "failed", json_object_new_boolean(rc != 0));
    usbvm_json_add_str(o, "msg", err ? err->message : msg);
    json_object_object_add(o, "rc", json_object_new_int(rc));
    usbvm_json_add_str(o, "domain", a->domain);
    usbvm_json_add_str(o, "device", a->device);
    if (a->identity)
        usbvm_json_add_str(o, "identity", a->identity);
    usbvm_json_add_str(o, "mode", a->mode);
    usbvm_json_add_str(o, "alias", a->alias);
    usbvm_json_add_str(o, "state", a->have_res ? usbvm_state_to_string(a->res.state) : NULL);
    json_object *notes = json_object_new_array();
    if (a->have_res && a->res.notes[0])
        json_object_array_add(notes, json_object_new_string(a->res.notes));
    json_object_object_add(o, "notes", notes);
    if (cli->json)
        usbvm_out_json(o);
    else if (err)
        usbvm_cli_error(cli, err);
    else if (cli->verbosity >= 0)
        printf("%s\n", msg);
    return rc;
}

static json_object *failure_object(const char *msg, int rc)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "changed", json_object_new_boolean(false));
    json_object_object_add(o, "failed", json_object_new_boolean(true));
    usbvm_json_add_str(o, "msg", msg);
    json_object_object_add(o, "rc", json_object_new_int(rc));
    return o;
}

int usbvm_cli_usage_error(UsbvmCli *cli, const UsbvmVerb *verb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    _cleanup_free_ char *name = !verb          ? NULL
                                : verb->parent ? xasprintf("%s %s", verb->parent, verb->name)
                                               : xstrdup(verb->name);
    _cleanup_free_ char *line =
        name ? xasprintf("usbvm %s: %s; see 'usbvm %s --help'", name, msg, name)
             : xasprintf("usbvm: %s; see 'usbvm --help'", msg);
    if (cli && cli->json) {
        /* Scripts parse stdout whatever happened: a usage error is one JSON object too. */
        _cleanup_(json_object_putp) json_object *o = failure_object(line, USBVM_E_USAGE);
        usbvm_out_json(o);
    } else {
        _cleanup_free_ char *esc = usbvm_escape_controls(line);
        fprintf(stderr, "%s\n", esc);
    }
    return USBVM_E_USAGE;
}

int usbvm_cli_error(UsbvmCli *cli, const UsbvmError *err)
{
    int rc = err->kind ? (int)err->kind : USBVM_E_FAILED;
    const char *msg = err->message[0] ? err->message : "unknown error";
    if (cli->json) {
        _cleanup_(json_object_putp) json_object *o = failure_object(msg, rc);
        usbvm_out_json(o);
    } else {
        /* libvirt's messages may quote what a device reported; escape what a terminal obeys. */
        _cleanup_free_ char *esc = usbvm_escape_controls(msg);
        fprintf(stderr, "usbvm: %s\n", esc);
    }
    return rc;
}

void usbvm_cli_warning(UsbvmCli *cli, const char *fmt, ...)
{
    if (cli->verbosity < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *raw = xvasprintf(fmt, ap);
    va_end(ap);
    _cleanup_free_ char *msg = usbvm_escape_controls(raw);
    fprintf(stderr, "usbvm: warning: %s\n", msg);
}

int usbvm_out_finish(void)
{
    /* A full disk or a closed pipe must not look like success (git does the same). */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (errno != EPIPE)
            fprintf(stderr, "usbvm: cannot write output: %s\n", strerror(errno));
        return USBVM_E_FAILED;
    }
    return 0;
}
