/* Placeholder until the show verb lands; replaced wholesale by its implementation. */
#include "cli.h"

const struct poptOption usbvm_show_options[] = {
    USBVM_COMMON_OPTIONS,
    POPT_TABLEEND,
};

int usbvm_cmd_show(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv)
{
    fprintf(stderr, "usbvm show: not built yet\n");
    return USBVM_E_FAILED;
}
