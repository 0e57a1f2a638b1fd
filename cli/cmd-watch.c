/* Placeholder until the watch verb lands; replaced wholesale by its implementation. */
#include "cli.h"

const struct poptOption usbvm_watch_options[] = {
    USBVM_COMMON_OPTIONS,
    POPT_TABLEEND,
};

int usbvm_cmd_watch(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv)
{
    fprintf(stderr, "usbvm watch: not built yet\n");
    return USBVM_E_FAILED;
}
