/* Reading sysfs without libudev (lib/sysfs.c). */
#pragma once

#include "util.h"

/* A sysfs attribute of the directory at dfd, as libudev gives it (its trailing newline
 * removed); NULL when it cannot be read. */
char *usbvm_sysfs_attr(int dfd, const char *name);
/* KEY's value in a uevent file's text ("DEVTYPE=usb_device\n..."), NULL when absent. */
char *usbvm_uevent_value(const char *uevent, const char *key);
