/* Placeholder until the rules verbs land; replaced wholesale by their implementation. */
#include "cli.h"

const UsbvmVerb usbvm_rules_subverbs[] = {
    { NULL },
};

int usbvm_cmd_rules(UsbvmCli *cli, const UsbvmVerb *verb, int argc, const char **argv)
{
    fprintf(stderr, "usbvm rules: not built yet\n");
    return USBVM_E_FAILED;
}
