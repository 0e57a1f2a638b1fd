/* Placeholder until the list verb lands; replaced wholesale by its implementation. */
#include "cli.h"

const struct poptOption usbvm_list_options[] = {
    USBVM_COMMON_OPTIONS,
    POPT_TABLEEND,
};

int usbvm_cmd_list(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv)
{
    fprintf(stderr, "usbvm list: not built yet\n");
    return USBVM_E_FAILED;
}
