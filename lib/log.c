#include "log.h"

static UsbvmLogSink log_sink;
static void *log_userdata;
static UsbvmLogLevel log_max_level = USBVM_LOG_INFO;

void usbvm_log_set_sink(UsbvmLogSink sink, void *userdata)
{
    log_sink = sink;
    log_userdata = userdata;
}

void usbvm_log_set_max_level(UsbvmLogLevel level)
{
    log_max_level = level;
}

bool usbvm_log_enabled(UsbvmLogLevel level)
{
    return log_sink && level <= log_max_level;
}

void usbvm_logf(UsbvmLogLevel level, json_object *fields, const char *fmt, ...)
{
    if (!usbvm_log_enabled(level)) {
        json_object_put(fields);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    char *raw = xvasprintf(fmt, ap);
    va_end(ap);
    /* One call, one record: a device string that reached the format unescaped must not end
     * the line (under the journal a "\n<0>" would forge an emergency record) nor move the
     * cursor of whoever reads the log. */
    char *line = usbvm_escape_controls(raw);
    free(raw);
    log_sink(level, line, fields, log_userdata);
    free(line);
    json_object_put(fields);
}
