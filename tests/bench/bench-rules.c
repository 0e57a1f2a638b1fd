/* Benchmark: 100 devices decided against 10,000 rules.
 *
 *   usbvm (compiled)   usbvm_ruleset_match(): first-match scan over rules parsed once,
 *                      ids and interfaces precompiled to integers.
 *   baseline (reparse) the same decision when the policy text is parsed again for every
 *                      decision, as udev RUN+= scripts and pollers that read their policy
 *                      per event do; also the same scan.
 *
 * Half the devices match no rule (the worst case: every rule is tried), the others match
 * at spread-out positions. Prints ns per decision for both, side by side.
 * Build: see the report / tests/bench/CMakeLists.txt; it links to usbvmcore only. */
#include "rules.h"
#include "../unit/test-rules-fixtures.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define N_RULES   10000
#define N_DEVICES 100

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static char *make_rules(void)
{
    UsbvmBuf b = { 0 };
    usbvm_buf_puts(&b, "# generated: 10,000 rules\n");
    for (unsigned i = 0; i < N_RULES; i++) {
        switch (i % 4) {
        case 0:
            usbvm_buf_printf(&b, "attach id %04x:%04x serial \"SN%05u\" to vm%u as usb\n",
                             0x1000 + i % 4096, i / 4 % 65536, i, i % 50);
            break;
        case 1:
            usbvm_buf_printf(&b,
                             "attach id %04x:* with-interface 08:*:* fs-label \"L%u\" to vm%u "
                             "as virtio\n",
                             0x2000 + i % 4096, i, i % 50);
            break;
        case 2:
            usbvm_buf_printf(&b, "ignore via-port \"9-%u.%u\" name one-of { \"A%u\" \"B%u\" }\n",
                             i % 7 + 1, i % 13 + 1, i, i);
            break;
        default:
            usbvm_buf_printf(&b,
                             "attach id one-of { %04x:%04x %04x:* } size >= %uG to vm%u as "
                             "scsi\n",
                             0x3000 + i % 4096, i % 65536, 0x3800 + i % 2048, i % 64 + 1, i % 50);
        }
    }
    return usbvm_buf_steal(&b);
}

int main(int argc, char **argv)
{
    unsigned rounds = argc > 1 ? (unsigned)atoi(argv[1]) : 20;
    _cleanup_free_ char *text = make_rules();
    UsbvmDevice *devs[N_DEVICES];
    for (unsigned i = 0; i < N_DEVICES; i++) {
        _cleanup_free_ char *port = xasprintf("1-%u.%u", i % 4 + 1, i % 7 + 1);
        _cleanup_free_ char *serial = NULL;
        uint16_t vid = 0xdead, pid = (uint16_t)i;
        if (i % 2 == 0) {
            /* matches rule k (a case-0 rule) at a spread-out position */
            unsigned k = (i * 97 % (N_RULES / 4)) * 4;
            vid = (uint16_t)(0x1000 + k % 4096);
            pid = (uint16_t)(k / 4 % 65536);
            serial = xasprintf("SN%05u", k);
        }
        devs[i] = usbvm_test_dev(port, vid, pid, serial, "Vendor", "Product", "hotplug");
        usbvm_test_iface(devs[i], 0x08, 0x06, 0x50);
        usbvm_test_block(devs[i], USBVM_BLOCK_DISK, "sdx", 16000000000ULL, NULL, NULL, NULL);
    }

    uint64_t t0 = now_ns();
    _cleanup_(usbvm_ruleset_freep) UsbvmRuleset *rs = NULL;
    if (usbvm_ruleset_parse("bench", text, &rs, NULL) < 0 || usbvm_ruleset_size(rs) != N_RULES) {
        fprintf(stderr, "bench-rules: the generated rules do not parse\n");
        return 1;
    }
    uint64_t parse_ns = now_ns() - t0;

    /* usbvm: rules parsed once. */
    size_t matched = 0;
    t0 = now_ns();
    for (unsigned r = 0; r < rounds; r++)
        for (unsigned i = 0; i < N_DEVICES; i++)
            matched += usbvm_ruleset_match(rs, devs[i]) != NULL;
    uint64_t compiled_ns = now_ns() - t0;
    size_t decisions = (size_t)rounds * N_DEVICES;

    /* Baseline: reparse per decision (fewer decisions: it is slow). */
    size_t base_decisions = N_DEVICES, base_matched = 0;
    t0 = now_ns();
    for (unsigned i = 0; i < N_DEVICES; i++) {
        UsbvmRuleset *tmp = NULL;
        if (usbvm_ruleset_parse("bench", text, &tmp, NULL) < 0)
            return 1;
        base_matched += usbvm_ruleset_match(tmp, devs[i]) != NULL;
        usbvm_ruleset_free(tmp);
    }
    uint64_t base_ns = now_ns() - t0;

    if (matched != (size_t)rounds * (N_DEVICES / 2) || base_matched != N_DEVICES / 2) {
        fprintf(stderr, "bench-rules: unexpected decisions (%zu, %zu)\n", matched, base_matched);
        return 1;
    }
    printf("bench-rules: %u devices x %u rules (half match no rule: full scan)\n", N_DEVICES,
           N_RULES);
    printf("  parse 10,000 rules once:        %10.3f ms\n", (double)parse_ns / 1e6);
    printf("  %-30s  %12s  %12s\n", "", "ns/decision", "decisions");
    printf("  %-30s  %12.0f  %12zu\n", "usbvm (parsed once, compiled)",
           (double)compiled_ns / (double)decisions, decisions);
    printf("  %-30s  %12.0f  %12zu\n", "baseline (reparse per decision)",
           (double)base_ns / (double)base_decisions, base_decisions);
    printf("  speed-up: %.0fx\n",
           ((double)base_ns / (double)base_decisions) / ((double)compiled_ns / (double)decisions));
    for (unsigned i = 0; i < N_DEVICES; i++)
        usbvm_test_dev_free(devs[i]);
    return 0;
}
