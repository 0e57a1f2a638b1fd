/* Placeholder until the detach verb lands; replaced wholesale by its implementation. */
#include "cli.h"

const struct poptOption usbvm_detach_options[] = {
    USBVM_COMMON_OPTIONS,
    POPT_TABLEEND,
};

int usbvm_cmd_detach(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv)
{
    fprintf(stderr, "usbvm detach: not built yet\n");
    return USBVM_E_FAILED;
}
