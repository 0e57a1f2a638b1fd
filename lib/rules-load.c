/* Loading rules from files and directories with sshd-style StrictModes. */
#include "rules-internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

/* StrictModes, as sshd checks its keys: a rules file decides which guest gets which device,
 * so when root reads it, only root may be able to change it or any directory on the way to
 * it, up to "/". A directory with the sticky bit (like /tmp) does not let others rename or
 * replace a root-owned entry in it, so it passes on the way; a rules directory itself must
 * not be writable by others, or they could add files to it. */
static int check_strict(const char *path, const struct stat *st, bool on_the_way,
                        UsbvmRuleDiags *diags)
{
    const char *what = !S_ISDIR(st->st_mode) ? "file"
                       : on_the_way          ? "directory above the rules"
                                             : "directory";
    if (st->st_uid != 0)
        return file_error(diags, path, -EPERM,
                          "refusing the rules %s: it is owned by uid %u, not root, and root "
                          "reads it (StrictModes); run 'chown root:root %s'",
                          what, (unsigned)st->st_uid, path);
    if (on_the_way && (st->st_mode & S_ISVTX))
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

/* Opens the canonical path canon (absolute, no symlinks: realpath's answer) one component at
 * a time from "/", each with O_NOFOLLOW, and checks each directory on the way through the
 * descriptor it opened, so no check is about another object than the one read (a symlink
 * swapped in after realpath fails to open). Returns the descriptor of the last component
 * (not yet checked) with its stat. */
static int open_checked(const char *canon, bool strict, UsbvmRuleDiags *diags, struct stat *ret_st)
{
    _cleanup_close_ int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return file_error(diags, "/", -errno, "cannot open '/': %s", strerror(errno));
    _cleanup_free_ char *walked = xstrdup("/");
    const char *p = canon;
    for (;;) {
        struct stat st = { 0 };
        if (fstat(fd, &st) < 0)
            return file_error(diags, walked, -errno, "cannot stat: %s", strerror(errno));
        while (*p == '/')
            p++;
        if (!*p) {
            *ret_st = st;
            int ret = fd;
            fd = -1;
            return ret;
        }
        if (strict) {
            int r = check_strict(walked, &st, true, diags);
            if (r < 0)
                return r;
        }
        size_t n = strcspn(p, "/");
        _cleanup_free_ char *name = xstrndup(p, n);
        p += n;
        /* Directories on the way need only search permission (O_PATH); the last component
         * is opened for reading, non-blocking in case it is a FIFO. */
        bool last = !p[strspn(p, "/")];
        int next = openat(fd, name,
                          (last ? O_RDONLY | O_NONBLOCK | O_NOCTTY : O_PATH | O_DIRECTORY) |
                              O_NOFOLLOW | O_CLOEXEC);
        char *w = xasprintf("%s%s%s", walked, streq(walked, "/") ? "" : "/", name);
        free(walked);
        walked = w;
        if (next < 0)
            return file_error(diags, walked, -errno, "cannot open the rules path: %s%s",
                              strerror(errno),
                              errno == ELOOP ? " (it changed while being read)" : "");
        close(fd);
        fd = next;
    }
}

static int load_file(int fd, const char *path, const struct stat *st, bool strict, UsbvmRuleset *rs,
                     UsbvmRuleDiags *diags)
{
    if (!S_ISREG(st->st_mode))
        return file_error(diags, path, -EINVAL, "not a regular file or directory");
    if (strict) {
        int r = check_strict(path, st, false, diags);
        if (r < 0)
            return r;
    }
    if ((uint64_t)st->st_size > MAX_RULES_FILE)
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

static int load_path(const char *path, bool dir_ok, bool strict, UsbvmRuleset *rs,
                     UsbvmRuleDiags *diags);

/* Reads the directory open at fd (ownership passes in), its files opened relative to it. */
static int load_dir(int fd, const char *path, const struct stat *st, bool strict, UsbvmRuleset *rs,
                    UsbvmRuleDiags *diags)
{
    if (strict) {
        int r = check_strict(path, st, false, diags);
        if (r < 0) {
            close(fd);
            return r;
        }
    }
    _cleanup_(closedirp) DIR *dir = fdopendir(fd);
    if (!dir) {
        int e = errno;
        close(fd);
        return file_error(diags, path, -e, "cannot open the rules directory: %s", strerror(e));
    }
    _cleanup_strv_free_ char **names = NULL;
    struct dirent *de;
    while ((errno = 0, de = readdir(dir)))
        if (is_rules_name(de->d_name))
            names = usbvm_strv_push(names, de->d_name);
    if (errno)
        return file_error(diags, path, -errno, "cannot read the rules directory: %s",
                          strerror(errno));
    usbvm_strv_sort(names);
    size_t n = usbvm_strv_length(names);
    int ret = 0;
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *file =
            xasprintf("%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/", names[i]);
        _cleanup_close_ int ffd =
            openat(dirfd(dir), names[i], O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        struct stat fst;
        int r;
        if (ffd < 0 && errno == ELOOP)
            /* A link to a file kept elsewhere: followed, and every directory on its way
             * checked, as for a path given on the command line. */
            r = load_path(file, false, strict, rs, diags);
        else if (ffd < 0)
            r = file_error(diags, file, -errno, "cannot open the rules file: %s", strerror(errno));
        else if (fstat(ffd, &fst) < 0)
            r = file_error(diags, file, -errno, "cannot stat the rules file: %s", strerror(errno));
        else if (!S_ISREG(fst.st_mode)) {
            usbvm_rule_diag_add(diags, true, file, NULL, 0, 0, "not a regular file; skipped");
            continue;
        } else
            r = load_file(ffd, file, &fst, strict, rs, diags);
        if (r < 0 && ret == 0)
            ret = r;
    }
    return ret;
}

/* The admin's own symlinks (/etc/usbvm -> /srv/usbvm) are followed once, by realpath; every
 * directory of the resolved path is then checked through the descriptors that read it. */
/* The path the admin named does not exist: say how to make it. */
static int missing_path(UsbvmRuleDiags *diags, const char *path)
{
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (is_rules_name(base))
        return file_error(diags, path, -ENOENT,
                          "no such file; write the rules there ('usbvm rules generate' proposes "
                          "some), or name another file or directory");
    return file_error(diags, path, -ENOENT,
                      "no such directory; create it ('mkdir -p %s') and put the rules in a "
                      "*.rules file there ('usbvm rules generate' proposes some)",
                      path);
}

static int load_path(const char *path, bool dir_ok, bool strict, UsbvmRuleset *rs,
                     UsbvmRuleDiags *diags)
{
    _cleanup_free_ char *canon = realpath(path, NULL);
    if (!canon && errno == ENOENT && dir_ok)
        return missing_path(diags, path);
    if (!canon)
        return file_error(diags, path, -errno, "cannot read rules: %s", strerror(errno));
    struct stat st = { 0 };
    int fd = open_checked(canon, strict, diags, &st);
    if (fd < 0)
        return fd;
    if (S_ISDIR(st.st_mode) && dir_ok)
        return load_dir(fd, path, &st, strict, rs, diags);
    int r = load_file(fd, path, &st, strict, rs, diags);
    close(fd);
    return r;
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
    int r = load_path(path, true, strict, rs, diags);
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
