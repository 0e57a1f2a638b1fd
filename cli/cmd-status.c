/* Placeholder until the status verb lands; replaced wholesale by its implementation. */
#include "cli.h"

const struct poptOption usbvm_status_options[] = {
    USBVM_COMMON_OPTIONS,
    POPT_TABLEEND,
};

int usbvm_cmd_status(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv)
{
    fprintf(stderr, "usbvm status: not built yet\n");
    return USBVM_E_FAILED;
}
