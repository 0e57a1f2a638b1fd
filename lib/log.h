/* Logging for long-running library code (watch, reconcile). The library never prints: it
 * hands records to a sink that the program installs. Without a sink, records are dropped. */
#pragma once

#include "util.h"

#include <json-c/json.h>

typedef enum UsbvmLogLevel {
    USBVM_LOG_ERR = 3,
    USBVM_LOG_WARNING = 4,
    USBVM_LOG_NOTICE = 5,
    USBVM_LOG_INFO = 6,
    USBVM_LOG_DEBUG = 7,
} UsbvmLogLevel;

/* One record: a human line (already escaped, no trailing newline), and optionally a JSON
 * object with the same facts as fields (borrowed; the sink must not keep it). */
typedef void (*UsbvmLogSink)(UsbvmLogLevel level, const char *line, json_object *fields,
                             void *userdata);

void usbvm_log_set_sink(UsbvmLogSink sink, void *userdata);
void usbvm_log_set_max_level(UsbvmLogLevel level);
bool usbvm_log_enabled(UsbvmLogLevel level);

/* fields may be NULL; it is released by usbvm_logf (ownership passes in). */
void usbvm_logf(UsbvmLogLevel level, json_object *fields, const char *fmt, ...) _printf_(3, 4);

#define usbvm_log_error(...)   usbvm_logf(USBVM_LOG_ERR, NULL, __VA_ARGS__)
#define usbvm_log_warning(...) usbvm_logf(USBVM_LOG_WARNING, NULL, __VA_ARGS__)
#define usbvm_log_notice(...)  usbvm_logf(USBVM_LOG_NOTICE, NULL, __VA_ARGS__)
#define usbvm_log_info(...)    usbvm_logf(USBVM_LOG_INFO, NULL, __VA_ARGS__)
#define usbvm_log_debug(...)   usbvm_logf(USBVM_LOG_DEBUG, NULL, __VA_ARGS__)
