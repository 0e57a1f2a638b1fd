/* Placeholder until the attach verb lands; replaced wholesale by its implementation. */
#include "cli.h"

const struct poptOption usbvm_attach_options[] = {
    USBVM_COMMON_OPTIONS,
    POPT_TABLEEND,
};

int usbvm_cmd_attach(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv)
{
    fprintf(stderr, "usbvm attach: not built yet\n");
    return USBVM_E_FAILED;
}
