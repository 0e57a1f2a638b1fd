/* Loading rules from files and directories with sshd-style StrictModes. */
#include "rules-internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>

/* No sane rules file comes near this; it keeps a mistaken path (a disk image) harmless. */
#define MAX_RULES_FILE (64u << 20)

/* ---- loading ---- */

static int file_error(UsbvmRuleDiags *diags, const char *path, int r, const char *fmt, ...)
    _printf_(4, 5);
static int file_error(UsbvmRuleDiags *diags, const char *path, int r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *m = xvasprintf(fmt, ap);
    va_end(ap);
    usbvm_rule_diag_add(diags, false, path, NULL, 0, 0, "%s", m);
    return r;
}

/* StrictModes: a rules file decides which guest gets which device, so when root reads it,
 * only root may be able to change it. A directory with the sticky bit (like /tmp) does not
 * let others replace a root-owned file in it, so it passes as the parent of a file; a rules
 * directory itself must not be writable by others, or they could add files to it. */
static int check_strict(const char *path, const struct stat *st, bool is_parent,
                        UsbvmRuleDiags *diags)
{
    const char *what = S_ISDIR(st->st_mode) ? "directory" : "file";
    if (st->st_uid != 0)
        return file_error(diags, path, -EPERM,
                          "refusing the rules %s: it is owned by uid %u, not root, and root "
                          "reads it (StrictModes); run 'chown root:root %s'",
                          what, (unsigned)st->st_uid, path);
    if (is_parent && (st->st_mode & S_ISVTX))
        return 0;
    if (st->st_mode & (S_IWGRP | S_IWOTH)) {
        bool g = st->st_mode & S_IWGRP, o = st->st_mode & S_IWOTH;
        return file_error(diags, path, -EPERM,
                          "refusing the rules %s: it is writable by %s, and root reads it "
                          "(StrictModes); run 'chmod go-w %s'",
                          what,
                          g && o ? "group and others"
                          : g    ? "its group"
                                 : "others",
                          path);
    }
    return 0;
}

static int load_file(const char *path, bool strict, UsbvmRuleset *rs, UsbvmRuleDiags *diags)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return file_error(diags, path, -errno, "cannot open the rules file: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0)
        return file_error(diags, path, -errno, "cannot stat the rules file: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return file_error(diags, path, -EINVAL, "not a regular file or directory");
    if (strict) {
        int r = check_strict(path, &st, false, diags);
        if (r < 0)
            return r;
    }
    if ((uint64_t)st.st_size > MAX_RULES_FILE)
        return file_error(diags, path, -EFBIG, "the rules file is larger than %u MiB",
                          MAX_RULES_FILE >> 20);

    UsbvmBuf b = { 0 };
    char chunk[16384];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            usbvm_buf_free(&b);
            return file_error(diags, path, -e, "cannot read the rules file: %s", strerror(e));
        }
        if (n == 0)
            break;
        usbvm_buf_append(&b, chunk, (size_t)n);
        if (b.len > MAX_RULES_FILE) {
            usbvm_buf_free(&b);
            return file_error(diags, path, -EFBIG, "the rules file is larger than %u MiB",
                              MAX_RULES_FILE >> 20);
        }
    }
    size_t len = b.len;
    _cleanup_free_ char *text = usbvm_buf_steal(&b);
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        unsigned line = 1, col = 1;
        for (const char *c = text; c < nul; c++) {
            if (*c == '\n') {
                line++;
                col = 1;
            } else
                col++;
        }
        usbvm_rule_diag_add(diags, false, path, text, line, col,
                            "NUL byte in the rules file (is this a text file?)");
        return -EINVAL;
    }
    return usbvm_rules_parse_into(path, text, len, rs, diags) > 0 ? -EINVAL : 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_rules_name(const char *n)
{
    size_t l = strlen(n);
    return n[0] != '.' && l > 6 && streq(n + l - 6, ".rules");
}

static void closedirp(DIR **d)
{
    if (*d)
        closedir(*d);
}

static int load_dir(const char *path, const struct stat *st, bool strict, UsbvmRuleset *rs,
                    UsbvmRuleDiags *diags)
{
    if (strict) {
        int r = check_strict(path, st, false, diags);
        if (r < 0)
            return r;
    }
    _cleanup_(closedirp) DIR *dir = opendir(path);
    if (!dir)
        return file_error(diags, path, -errno, "cannot open the rules directory: %s",
                          strerror(errno));
    _cleanup_strv_free_ char **names = NULL;
    struct dirent *de;
    while ((errno = 0, de = readdir(dir)))
        if (is_rules_name(de->d_name))
            names = usbvm_strv_push(names, de->d_name);
    if (errno)
        return file_error(diags, path, -errno, "cannot read the rules directory: %s",
                          strerror(errno));
    size_t n = usbvm_strv_length(names);
    if (n > 0)
        qsort(names, n, sizeof(char *), cmp_names);
    int ret = 0;
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *file =
            xasprintf("%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/", names[i]);
        struct stat fst;
        if (stat(file, &fst) == 0 && !S_ISREG(fst.st_mode)) {
            usbvm_rule_diag_add(diags, true, file, NULL, 0, 0, "not a regular file; skipped");
            continue;
        }
        int r = load_file(file, strict, rs, diags);
        if (r < 0 && ret == 0)
            ret = r;
    }
    return ret;
}

int usbvm_ruleset_load_flags(const char *path, UsbvmRulesLoadFlags flags, UsbvmRuleset **ret,
                             UsbvmRuleDiags *diags)
{
    UsbvmRuleDiags local = { 0 };
    if (!diags)
        diags = &local;
    bool strict = flags & USBVM_RULES_STRICT       ? true
                  : flags & USBVM_RULES_NOT_STRICT ? false
                                                   : geteuid() == 0;
    _cleanup_(usbvm_ruleset_freep) UsbvmRuleset *rs = usbvm_ruleset_new();
    size_t errors_before = diags->n_errors;
    struct stat st;
    int r;

    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (stat(path, &st) < 0 && errno == ENOENT && is_rules_name(base))
        r = file_error(diags, path, -ENOENT,
                       "no such file; write the rules there ('usbvm rules generate' proposes "
                       "some), or name another file or directory");
    else if (stat(path, &st) < 0 && errno == ENOENT)
        r = file_error(diags, path, -ENOENT,
                       "no such directory; create it ('mkdir -p %s') and put the rules in a "
                       "*.rules file there ('usbvm rules generate' proposes some)",
                       path);
    else if (stat(path, &st) < 0)
        r = file_error(diags, path, -errno, "cannot read rules: %s", strerror(errno));
    else if (S_ISDIR(st.st_mode))
        r = load_dir(path, &st, strict, rs, diags);
    else {
        r = 0;
        if (strict) {
            _cleanup_free_ char *copy = xstrdup(path);
            const char *parent = dirname(copy);
            struct stat pst;
            if (stat(parent, &pst) == 0)
                r = check_strict(parent, &pst, true, diags);
        }
        if (r == 0)
            r = load_file(path, strict, rs, diags);
    }
    if (r == 0 && diags->n_errors > errors_before)
        r = -EINVAL;
    usbvm_rule_diags_clear(&local);
    if (r < 0)
        return r;
    if (ret)
        *ret = TAKE_PTR(rs);
    return 0;
}

int usbvm_ruleset_load(const char *path, UsbvmRuleset **ret, UsbvmRuleDiags *diags)
{
    return usbvm_ruleset_load_flags(path, USBVM_RULES_STRICT_AUTO, ret, diags);
}
