/* The service manager's notification protocol (sd_notify without libsystemd): READY=1 once the
 * daemon has applied its policy, WATCHDOG=1 from the main loop, RELOADING=1 and STOPPING=1.
 * Does nothing when $NOTIFY_SOCKET is not set (not started by systemd with Type=notify). */
#pragma once

#include <stdint.h>

void usbvm_notify(const char *state);
/* Half of $WATCHDOG_USEC when this process is the one being watched, else 0. */
uint64_t usbvm_notify_watchdog_usec(void);
