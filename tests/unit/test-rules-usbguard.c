/* Differential test of the rules parser against USBGuard's own, usbguard-rule-parser from
 * Debian's usbguard package: the match parts of the project's rule corpus, and lines made
 * from them by seeded mutations (tokens dropped, duplicated, swapped, replaced; stray braces,
 * quotes, escapes, operators; single bytes inserted or deleted), must be accepted or rejected
 * alike, as "allow MATCH" by USBGuard and "ignore MATCH" by usbvm. Lines that use a word only
 * one side knows (USBGuard's hash, parent-hash, label, if; usbvm's storage attributes and
 * vendor-name) are left out. The differences usbvm makes on purpose are listed below and in
 * usbvm.rules(5).
 *
 *   test-rules-usbguard [--seed N] [--count N]   (defaults: seed 1, 3000 mutated lines)
 *
 * usbguard-rule-parser -f stops at the first line it rejects, so the lines go through one
 * process per rejected line: the process reads the remaining lines from a pipe, and its
 * "INPUT:" lines tell how far it got. */
#include "rules.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdlib.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static unsigned long opt_seed = 1;
static size_t opt_count = 3000;

typedef struct Lines {
    char **v;
    size_t n;
} Lines;

static void lines_add(Lines *l, char *s)
{
    l->v = xrealloc(l->v, (l->n + 1) * sizeof(char *));
    l->v[l->n++] = s;
}

static void lines_clear(Lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    *l = (Lines){ 0 };
}

/* ---- tokens: strings (to the closing quote or the end), braces, and runs of other bytes */

static size_t token_end(const char *p)
{
    if (*p == '"') {
        const char *q = p + 1;
        while (*q && *q != '"')
            q += (*q == '\\' && q[1]) ? 2 : 1;
        return (size_t)(q - p) + (*q == '"');
    }
    if (*p == '{' || *p == '}')
        return 1;
    size_t n = 0;
    while (p[n] && p[n] != ' ' && p[n] != '\t' && p[n] != '"' && p[n] != '{' && p[n] != '}')
        n++;
    return n;
}

static void tokenize(const char *s, Lines *ret)
{
    *ret = (Lines){ 0 };
    for (const char *p = s; *p;) {
        if (*p == ' ' || *p == '\t') {
            p++;
            continue;
        }
        size_t n = token_end(p);
        lines_add(ret, xstrndup(p, n));
        p += n;
    }
}

static char *join(const Lines *t)
{
    UsbvmBuf b = { 0 };
    for (size_t i = 0; i < t->n; i++) {
        if (i)
            usbvm_buf_puts(&b, " ");
        usbvm_buf_puts(&b, t->v[i]);
    }
    return usbvm_buf_steal(&b);
}

/* Whether a bare word (not in a string, not a comment) is one of words. */
static bool uses_word(const char *line, const char *const *words)
{
    _cleanup_free_ char *copy = xstrdup(line);
    char *hash = NULL;
    for (char *p = copy; *p; p += token_end(p) ? token_end(p) : 1)
        if (*p == '#') {
            hash = p;
            break;
        }
    if (hash)
        *hash = '\0';
    Lines t;
    tokenize(copy, &t);
    bool found = false;
    for (size_t i = 0; i < t.n && !found; i++)
        for (size_t w = 0; words[w] && !found; w++) {
            /* "size>=8G": comparison operators need no blank either */
            size_t n = strlen(words[w]);
            found = strncmp(t.v[i], words[w], n) == 0 && (!t.v[i][n] || strchr("<>=!", t.v[i][n]));
        }
    lines_clear(&t);
    return found;
}

static const char *const unshared_words[] = {
    "hash",    "parent-hash", "label",   "if",                  /* USBGuard only */
    "fs-type", "fs-label",    "fs-uuid", "size", "vendor-name", /* usbvm only */
    NULL,
};

/* ---- the corpus: match parts of the project's rules ---- */

static bool printable_line(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    return true;
}

/* "attach MATCH to D ..." -> MATCH; "ignore MATCH" and USBGuard's "allow MATCH" -> MATCH. */
static char *match_part(const char *line)
{
    static const char *const targets[] = { "attach", "ignore", "allow", "block", "reject", NULL };
    line += strspn(line, " \t");
    for (size_t i = 0; targets[i]; i++) {
        size_t n = strlen(targets[i]);
        if (strncmp(line, targets[i], n) != 0 || (line[n] && line[n] != ' ' && line[n] != '\t'))
            continue;
        const char *m = line + n + strspn(line + n, " \t");
        for (const char *p = m; *p; p += token_end(p) ? token_end(p) : 1)
            if (i == 0 && strncmp(p, "to", 2) == 0 && (p[2] == ' ' || p[2] == '\t') &&
                (p[-1] == ' ' || p[-1] == '\t')) {
                size_t k = (size_t)(p - m);
                while (k && (m[k - 1] == ' ' || m[k - 1] == '\t'))
                    k--;
                return xstrndup(m, k);
            }
        return xstrdup(m);
    }
    return NULL;
}

static void add_corpus_file(Lines *seeds, const char *relpath, bool table)
{
    _cleanup_free_ char *path = xasprintf("%s/%s", USBVM_SRCDIR, relpath);
    _cleanup_free_ char *text = NULL;
    size_t len;
    if (usbvm_read_file(path, &text, &len) < 0)
        fail_msg("cannot read %s", path);
    /* A backslash at the end of a line continues the rule (usbvm only): join them first. */
    for (char *p = text; (p = strstr(p, "\\\n"));)
        p[0] = p[1] = ' ';
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (table) { /* "device | expected | rule" */
            char *bar = strchr(line, '|');
            bar = bar ? strchr(bar + 1, '|') : NULL;
            if (!bar || line[0] == '#')
                continue;
            line = bar + 1;
        }
        char *m = match_part(line);
        if (m && printable_line(m) && !uses_word(m, unshared_words))
            lines_add(seeds, m);
        else
            free(m);
    }
}

static void read_corpus(Lines *seeds)
{
    *seeds = (Lines){ 0 };
    add_corpus_file(seeds, "tests/rules/good.rules", false);
    add_corpus_file(seeds, "tests/rules/bad.rules", false);
    add_corpus_file(seeds, "tests/rules/match-table.txt", true);
    add_corpus_file(seeds, "examples/10-example.rules", false);
    for (unsigned i = 1;; i++) {
        _cleanup_free_ char *good = xasprintf("tests/fuzz/corpus/seed-good-%u", i);
        _cleanup_free_ char *bad = xasprintf("tests/fuzz/corpus/seed-bad-%u", i);
        _cleanup_free_ char *path = xasprintf("%s/%s", USBVM_SRCDIR, good);
        if (access(path, R_OK) < 0)
            break;
        add_corpus_file(seeds, good, false);
        add_corpus_file(seeds, bad, false);
    }
}

/* ---- mutations ---- */

static uint64_t rng_state;
static unsigned rnd(unsigned n)
{
    /* splitmix64: the same lines for the same seed on every machine */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (unsigned)((z ^ (z >> 31)) % n);
}

static const char *const stray_tokens[] = {
    "{",
    "}",
    "\"",
    "\\",
    "\"\"",
    "\"\\\"",
    "\"\\x4\"",
    "\"\\x41\"",
    "\"\\q\"",
    "\"\\x\"",
    "one-of",
    "all-of",
    "none-of",
    "equals",
    "equals-ordered",
    "match-all",
    "*",
    "*:*",
    ":",
    "#",
    "id",
    "serial",
    "name",
    "via-port",
    "with-interface",
    "with-connect-type",
    "0781:5567",
    "0781:*",
    "*:5567",
    "078:5567",
    "03:*:*",
    "08:06:50",
    "08:*:50",
    "8:6:50",
    "==",
    "!=",
    "<",
    ",",
    "'a'",
    "allow",
    "ignore",
    "to",
    "as",
    "\\x41",
    "\"a\"b",
    "{}",
    "1-2",
    "\"1-2.*\"",
};
static const char stray_bytes[] = "{}\"\\:*# \tx0aZ,";

static void mutate_once(Lines *t, const Lines *seeds)
{
    unsigned op = rnd(7);
    if (t->n == 0)
        op = 3;
    size_t i = t->n ? rnd((unsigned)t->n) : 0;
    switch (op) {
    case 0: /* drop */
        free(t->v[i]);
        memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof(char *));
        t->n--;
        break;
    case 1: /* duplicate */
        lines_add(t, NULL);
        memmove(&t->v[i + 1], &t->v[i], (t->n - i - 1) * sizeof(char *));
        t->v[i] = xstrdup(t->v[i + 1]);
        break;
    case 2: { /* swap */
        size_t j = rnd((unsigned)t->n);
        char *x = t->v[i];
        t->v[i] = t->v[j];
        t->v[j] = x;
        break;
    }
    case 3:   /* insert a stray token */
    case 4: { /* or one from another line */
        char *s = NULL;
        if (op == 4) {
            Lines o;
            tokenize(seeds->v[rnd((unsigned)seeds->n)], &o);
            if (o.n)
                s = xstrdup(o.v[rnd((unsigned)o.n)]);
            lines_clear(&o);
        }
        if (!s)
            s = xstrdup(stray_tokens[rnd(ELEMENTSOF(stray_tokens))]);
        size_t at = rnd((unsigned)t->n + 1);
        lines_add(t, NULL);
        memmove(&t->v[at + 1], &t->v[at], (t->n - at - 1) * sizeof(char *));
        t->v[at] = s;
        break;
    }
    case 5: /* replace a token */
        free(t->v[i]);
        t->v[i] = xstrdup(stray_tokens[rnd(ELEMENTSOF(stray_tokens))]);
        break;
    default: { /* one byte inserted into, or deleted from, a token */
        size_t n = strlen(t->v[i]);
        size_t at = rnd((unsigned)n + 1);
        if (rnd(2) && n > 0) {
            at -= at == n;
            memmove(t->v[i] + at, t->v[i] + at + 1, n - at);
        } else {
            char *s = xmalloc(n + 2);
            memcpy(s, t->v[i], at);
            s[at] = stray_bytes[rnd(sizeof(stray_bytes) - 1)];
            memcpy(s + at + 1, t->v[i] + at, n - at + 1);
            free(t->v[i]);
            t->v[i] = s;
        }
        break;
    }
    }
}

static void make_lines(const Lines *seeds, Lines *ret)
{
    *ret = (Lines){ 0 };
    for (size_t i = 0; i < seeds->n; i++)
        lines_add(ret, xstrdup(seeds->v[i]));
    rng_state = opt_seed;
    while (ret->n < seeds->n + opt_count) {
        Lines t;
        tokenize(seeds->v[rnd((unsigned)seeds->n)], &t);
        /* Mostly one mutation: lines near the valid ones probe the parser's edges, and every
         * line USBGuard rejects costs a process. */
        unsigned r = rnd(8);
        for (unsigned k = r < 5 ? 1 : r < 7 ? 2 : 3; k > 0; k--)
            mutate_once(&t, seeds);
        char *s = join(&t);
        lines_clear(&t);
        /* Words only one side knows may come back by mutation: such lines prove nothing. A
         * line seen before proves nothing new. */
        bool seen = uses_word(s, unshared_words);
        for (size_t i = 0; i < ret->n && !seen; i++)
            seen = streq(ret->v[i], s);
        if (seen)
            free(s);
        else
            lines_add(ret, s);
    }
}

/* ---- the two judges ---- */

static bool usbvm_accepts(const char *match)
{
    _cleanup_free_ char *text = xasprintf("ignore%s%s\n", *match ? " " : "", match);
    UsbvmRuleDiags d = { 0 };
    UsbvmRuleset *rs = NULL;
    int r = usbvm_ruleset_parse("diff", text, &rs, &d);
    usbvm_ruleset_free(rs);
    usbvm_rule_diags_clear(&d);
    return r == 0;
}

static void write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) /* EPIPE: the parser stopped at a rejected line */
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* One usbguard-rule-parser process working through lines [from, end). */
typedef struct Slot {
    size_t from, end;
    pid_t pid;
    int out; /* its stdout, a deleted temporary file */
} Slot;

static void slot_spawn(Slot *s, const Lines *lines, unsigned *spawns)
{
    char out_path[] = "/tmp/usbvm-diff-XXXXXX";
    s->out = mkostemp(out_path, O_CLOEXEC);
    assert_true(s->out >= 0);
    unlink(out_path);
    int in[2];
    assert_int_equal(pipe2(in, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, s->out, STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    char *argv[] = { (char *)"usbguard-rule-parser", (char *)"-f", (char *)"/dev/stdin", NULL };
    int r = posix_spawnp(&s->pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (r != 0)
        fail_msg("cannot run usbguard-rule-parser: %s; install Debian's usbguard package "
                 "(tests/install-deps does)",
                 strerror(r));
    (*spawns)++;
    close(in[0]);
    /* A pipe, not a file: the parser opens /dev/stdin again, which would rewind a file. */
    for (size_t i = s->from; i < s->end; i++) {
        _cleanup_free_ char *l = xasprintf("allow%s%s\n", *lines->v[i] ? " " : "", lines->v[i]);
        write_all(in[1], l, strlen(l));
    }
    close(in[1]);
}

/* The process ended: the lines it read before stopping are accepted, the last one it read
 * is rejected when it failed. */
static void slot_collect(Slot *s, int status, bool *guard_ok)
{
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        fail_msg("usbguard-rule-parser cannot be run; install Debian's usbguard package "
                 "(tests/install-deps does)");
    lseek(s->out, 0, SEEK_SET);
    FILE *f = fdopen(s->out, "r");
    assert_non_null(f);
    size_t n = 0, cap = 0;
    char *buf = NULL;
    while (getline(&buf, &cap, f) > 0)
        n += strncmp(buf, "INPUT: ", 7) == 0;
    free(buf);
    fclose(f);
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (ok)
        assert_int_equal(n, s->end - s->from);
    else if (n == 0 || n > s->end - s->from)
        fail_msg("usbguard-rule-parser failed after reading %zu lines (status %d)", n, status);
    for (size_t i = s->from; i < s->from + n; i++)
        guard_ok[i] = ok || i + 1 < s->from + n;
    s->from += n;
    s->pid = 0;
}

/* USBGuard's verdict on every line: the lines are split among one process per CPU, each
 * restarted after the line it rejected. */
static void usbguard_judge(const Lines *lines, bool *guard_ok, unsigned *spawns)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t n_slots = cpus < 1 ? 1 : cpus > 8 ? 8 : (size_t)cpus;
    Slot slots[8] = { 0 };
    for (size_t k = 0; k < n_slots; k++) {
        slots[k].from = lines->n * k / n_slots;
        slots[k].end = lines->n * (k + 1) / n_slots;
        if (slots[k].from < slots[k].end)
            slot_spawn(&slots[k], lines, spawns);
    }
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0 && errno == ECHILD)
            break;
        assert_true(pid > 0);
        for (size_t k = 0; k < n_slots; k++)
            if (slots[k].pid == pid) {
                slot_collect(&slots[k], status, guard_ok);
                if (slots[k].from < slots[k].end)
                    slot_spawn(&slots[k], lines, spawns);
            }
    }
    for (size_t k = 0; k < n_slots; k++)
        assert_int_equal(slots[k].from, slots[k].end);
}

/* ---- differences on purpose ---- */

typedef struct Difference {
    const char *why;
    bool usbvm_ok; /* usbvm's verdict in this difference */
    bool (*applies)(const char *match);
    size_t seen;
} Difference;

static bool has_nul_escape(const char *m)
{
    return strstr(m, "\\x00") != NULL;
}

static bool ends_with_blank(const char *m)
{
    size_t n = strlen(m);
    return n > 0 && (m[n - 1] == ' ' || m[n - 1] == '\t');
}

/* A backslash at the end of the line, outside a string, after blanks or not. */
static bool ends_with_continuation(const char *m)
{
    size_t n = strlen(m);
    while (n > 0 && (m[n - 1] == ' ' || m[n - 1] == '\t'))
        n--;
    if (n == 0 || m[n - 1] != '\\')
        return false;
    bool in_str = false;
    for (size_t i = 0; i + 1 < n; i++) {
        if (in_str && m[i] == '\\')
            i++;
        else if (m[i] == '"')
            in_str = !in_str;
    }
    return !in_str;
}

static Difference differences[] = {
    { "a string with \\x00: no USB string holds a NUL byte, and usbvm's values are C strings, "
      "so usbvm rejects what could never match",
      false, has_nul_escape, 0 },
    { "blanks at the end of the line: invisible in an editor, so usbvm ignores them as it "
      "ignores blanks between tokens; USBGuard rejects the line",
      true, ends_with_blank, 0 },
    { "a backslash at the end of the line continues the rule on the next line (usbvm only): "
      "a long rule can be wrapped; USBGuard has no continuation lines",
      true, ends_with_continuation, 0 },
};

static const Difference *explain(const char *match, bool usbvm_ok)
{
    for (size_t i = 0; i < ELEMENTSOF(differences); i++)
        if (differences[i].usbvm_ok == usbvm_ok && differences[i].applies(match))
            return &differences[i];
    return NULL;
}

static void test_against_usbguard(void **state)
{
    (void)state;
    Lines seeds, lines;
    read_corpus(&seeds);
    assert_true(seeds.n >= 100); /* the corpus shrank or the filter ate it */
    make_lines(&seeds, &lines);

    bool *guard_ok = xcalloc(lines.n, sizeof(bool));
    unsigned spawns = 0;
    uint64_t t0 = usbvm_now_usec();
    signal(SIGPIPE, SIG_IGN);
    usbguard_judge(&lines, guard_ok, &spawns);
    uint64_t t1 = usbvm_now_usec();

    size_t agree = 0, accepted = 0, on_purpose = 0, unexplained = 0;
    for (size_t i = 0; i < lines.n; i++) {
        bool ok = usbvm_accepts(lines.v[i]);
        accepted += guard_ok[i];
        if (ok == guard_ok[i]) {
            agree++;
            continue;
        }
        const Difference *d = explain(lines.v[i], ok);
        if (d) {
            ((Difference *)d)->seen++;
            on_purpose++;
            continue;
        }
        if (unexplained++ < 40)
            print_error("disagree: USBGuard %s, usbvm %s: allow|ignore %s\n",
                        guard_ok[i] ? "accepts" : "rejects", ok ? "accepts" : "rejects",
                        lines.v[i]);
    }
    print_message("USBGuard differential (seed %lu): %zu lines compared (%zu from the corpus, "
                  "%zu mutated), %zu agree (USBGuard accepts %zu), %zu differ on purpose, "
                  "%zu differ unexplained; %u usbguard-rule-parser runs in %llu ms\n",
                  opt_seed, lines.n, seeds.n, lines.n - seeds.n, agree, accepted, on_purpose,
                  unexplained, spawns, (unsigned long long)((t1 - t0) / 1000));
    for (size_t i = 0; i < ELEMENTSOF(differences); i++)
        print_message("  on purpose, %zu lines: %s\n", differences[i].seen, differences[i].why);
    free(guard_ok);
    lines_clear(&lines);
    lines_clear(&seeds);
    assert_int_equal(unexplained, 0);
}

static void parse_args(int argc, char **argv)
{
    /* The sanitizer pass of tests/run-all asks for fewer lines: it looks for memory errors in
     * the parser, which the first few hundred mutations already exercise. */
    uint64_t env_count;
    const char *env = getenv("USBVM_DIFF_COUNT");
    if (env && usbvm_parse_u64(env, 10, &env_count) == 0)
        opt_count = (size_t)env_count;
    for (int i = 1; i < argc; i++) {
        uint64_t v;
        if (i + 1 < argc && (streq(argv[i], "--seed") || streq(argv[i], "--count")) &&
            usbvm_parse_u64(argv[i + 1], 10, &v) == 0) {
            if (streq(argv[i], "--seed"))
                opt_seed = (unsigned long)v;
            else
                opt_count = (size_t)v;
            i++;
            continue;
        }
        fprintf(stderr, "usage: %s [--seed N] [--count N]\n", argv[0]);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_usbguard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
