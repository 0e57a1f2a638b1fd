/* usbvm doctor: which USBGuard rule blocks a device. USBGuard does not say which rule decided,
 * so the rules come from 'usbguard list-rules' (run without a shell, with a deadline) and are
 * matched here: their match part is USBGuard's vocabulary, which usbvm's rules share, so each
 * one is parsed as an usbvm "ignore" rule and judged by usbvm's own matcher. */
#include "doctor.h"
#include "rules.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>

extern char **environ;

/* Enough for any rule set an admin keeps; a runaway child is cut off. */
#define MAX_OUTPUT (4u << 20)

static int64_t ms_left(uint64_t deadline)
{
    uint64_t now = usbvm_now_usec();
    return now >= deadline ? 0 : (int64_t)((deadline - now) / 1000);
}

int usbvm_spawn_capture(char *const argv[], int timeout_ms, char **ret_out, UsbvmError *err)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return usbvm_error_set(err, USBVM_E_FAILED, errno, "cannot create a pipe: %s",
                               strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (r != 0) {
        close(fds[0]);
        return usbvm_error_set(err, USBVM_E_FAILED, r, "cannot run %s: %s", argv[0], strerror(r));
    }
    UsbvmBuf out = { 0 };
    uint64_t deadline = usbvm_now_usec() + (uint64_t)timeout_ms * 1000;
    bool timed_out = false;
    for (;;) {
        struct pollfd p = { .fd = fds[0], .events = POLLIN };
        int n = poll(&p, 1, (int)ms_left(deadline));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            timed_out = n == 0;
            break;
        }
        char buf[4096];
        ssize_t got = read(fds[0], buf, sizeof(buf));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0 || out.len + (size_t)got > MAX_OUTPUT)
            break;
        usbvm_buf_append(&out, buf, (size_t)got);
    }
    close(fds[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (timed_out || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        usbvm_buf_free(&out);
        return usbvm_error_set(err, USBVM_E_FAILED, timed_out ? ETIMEDOUT : EIO, "%s %s", argv[0],
                               timed_out ? "did not answer in time" : "failed");
    }
    *ret_out = usbvm_buf_steal(&out);
    return 0;
}

/* The next word of a USBGuard rule, a quoted string kept whole with its escapes. */
static const char *next_word(const char *p, size_t *len)
{
    while (*p == ' ' || *p == '\t')
        p++;
    const char *s = p;
    bool quoted = false;
    for (; *p && (quoted || (*p != ' ' && *p != '\t')); p++) {
        if (quoted && *p == '\\' && p[1])
            p++;
        else if (*p == '"')
            quoted = !quoted;
    }
    *len = (size_t)(p - s);
    return *len ? s : NULL;
}

/* "block id 0781:5567 hash "..." via-port "1-2"" -> "ignore id 0781:5567 via-port "1-2"":
 * the attributes usbvm does not know (hash, parent-hash, label) and conditions are left out,
 * so a rule may look wider than it is; the answer says so. Returns NULL for an empty line. */
static char *as_usbvm_rule(const char *rule, const char **ret_target)
{
    size_t n;
    const char *w = next_word(rule, &n);
    if (!w)
        return NULL;
    *ret_target = n == 5 && memcmp(w, "allow", 5) == 0    ? "allow"
                  : n == 5 && memcmp(w, "block", 5) == 0  ? "block"
                  : n == 6 && memcmp(w, "reject", 6) == 0 ? "reject"
                                                          : NULL;
    if (!*ret_target)
        return NULL;
    UsbvmBuf b = { 0 };
    usbvm_buf_puts(&b, "ignore");
    bool skip_value = false;
    for (const char *p = w + n; (w = next_word(p, &n)); p = w + n) {
        if (skip_value) {
            skip_value = false;
            continue;
        }
        if ((n == 4 && memcmp(w, "hash", 4) == 0) ||
            (n == 11 && memcmp(w, "parent-hash", 11) == 0) ||
            (n == 5 && memcmp(w, "label", 5) == 0)) {
            skip_value = true;
            continue;
        }
        if (n == 2 && memcmp(w, "if", 2) == 0)
            break;
        usbvm_buf_puts(&b, " ");
        usbvm_buf_append(&b, w, n);
    }
    return usbvm_buf_steal(&b);
}

char *usbvm_usbguard_deciding_rule(const char *list_rules, const UsbvmDevice *d,
                                   const char **ret_target)
{
    _cleanup_free_ char *copy = xstrdup(list_rules);
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        const char *target = NULL;
        _cleanup_free_ char *rule = as_usbvm_rule(colon + 1, &target);
        if (!rule)
            continue;
        _cleanup_(usbvm_ruleset_freep) UsbvmRuleset *rs = NULL;
        UsbvmRuleDiags diags = { 0 };
        int r = usbvm_ruleset_parse("usbguard", rule, &rs, &diags);
        usbvm_rule_diags_clear(&diags);
        if (r < 0 || usbvm_ruleset_size(rs) != 1)
            continue; /* a rule usbvm cannot read: it cannot say whether it matches */
        if (usbvm_rule_matches(usbvm_ruleset_get(rs, 0), d)) {
            *ret_target = target;
            char *s = colon + 1;
            while (*s == ' ')
                s++;
            return xasprintf("%.*s: %s", (int)(colon - line), line, s);
        }
    }
    return NULL;
}
