/* The host lock (see hostlock.h). */
#include "sync.h"
#include "hostlock.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* 2^20 slots of 8 bytes: a sparse 8 MiB file. Two identities in one slot only wait for each
 * other; they never share a decision. */
#define SLOTS    (1u << 20)
#define SLOT_LEN 8

static const char *lock_path(const char *path)
{
    if (path)
        return path;
    const char *env = getenv("USBVM_LOCK_PATH");
    return env && *env ? env : USBVM_HOSTLOCK_PATH;
}

static uint64_t slot_for(const char *alias)
{
    uint64_t h = usbvm_hash64(alias, strlen(alias));
    return 1 + h % (SLOTS - 1); /* slot 0 is the generation counter */
}

static int lock_range(int fd, short type, uint64_t slot, bool wait)
{
    struct flock fl = {
        .l_type = type,
        .l_whence = SEEK_SET,
        .l_start = (off_t)(slot * SLOT_LEN),
        .l_len = SLOT_LEN,
    };
    if (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) < 0)
        return -errno;
    return 0;
}

static int open_lock_file(const char *path, UsbvmError *err)
{
    /* /run/usbvm is made on first use; a unit's RuntimeDirectory= makes it too. */
    _cleanup_free_ char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            return usbvm_error_set(err, USBVM_E_FAILED, errno,
                                   "cannot create %s for the host lock: %s; run usbvm as root", dir,
                                   strerror(errno));
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return usbvm_error_set(err, USBVM_E_FAILED, errno,
                               "cannot open the host lock %s: %s; run usbvm as root", path,
                               strerror(errno));
    return fd;
}

/* A wait for a slot, bounded: a thread of its own blocks in F_OFD_SETLKW (the lock belongs to
 * the open file description, so it holds for the caller too); the caller waits for it with a
 * timeout. A waiter given up on closes its descriptor once it gets the lock, releasing it. */
typedef struct Waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int fd;
    uint64_t slot;
    int r;
    bool done, abandoned;
} Waiter;

static void waiter_unref(Waiter *w, bool last)
{
    if (!last)
        return;
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
}

static void *waiter_main(void *opaque)
{
    Waiter *w = opaque;
    int r = lock_range(w->fd, F_WRLCK, w->slot, true);
    pthread_mutex_lock(&w->lock);
    w->r = r;
    w->done = true;
    bool abandoned = w->abandoned;
    if (abandoned)
        close(w->fd);
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    waiter_unref(w, abandoned);
    return NULL;
}

static int lock_wait_bounded(int fd, uint64_t slot, int timeout_ms)
{
    Waiter *w = xcalloc(1, sizeof(*w));
    pthread_mutex_init(&w->lock, NULL);
    usbvm_cond_init(&w->cond);
    w->fd = fd;
    w->slot = slot;
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int pr = pthread_create(&t, &attr, waiter_main, w);
    pthread_attr_destroy(&attr);
    if (pr != 0) {
        waiter_unref(w, true);
        return lock_range(fd, F_WRLCK, slot, true);
    }
    uint64_t deadline = usbvm_now_usec() + (uint64_t)timeout_ms * 1000;
    pthread_mutex_lock(&w->lock);
    while (!w->done && !usbvm_cond_wait_until(&w->cond, &w->lock, deadline))
        ;
    bool done = w->done;
    int r = done ? w->r : -EINTR;
    w->abandoned = !done;
    pthread_mutex_unlock(&w->lock);
    waiter_unref(w, done);
    return r;
}

int usbvm_hostlock_acquire(const char *path, const char *alias, unsigned flags, UsbvmHostLock *ret,
                           UsbvmError *err)
{
    path = lock_path(path);
    int fd = open_lock_file(path, err);
    if (fd < 0)
        return fd;
    uint64_t slot = slot_for(strempty(alias));
    int r = lock_range(fd, F_WRLCK, slot, false);
    if ((r == -EAGAIN || r == -EACCES) && (flags & USBVM_HOSTLOCK_WAIT))
        r = lock_wait_bounded(fd, slot, USBVM_HOSTLOCK_TIMEOUT_MS);
    if (r < 0) {
        if (r != -EINTR) /* else the abandoned waiter closes it */
            close(fd);
        if (r == -EAGAIN || r == -EACCES)
            return usbvm_error_set(err, USBVM_E_FAILED, EAGAIN,
                                   "another usbvm process is attaching or detaching this device "
                                   "right now; "
                                   "try again in a moment");
        if (r == -EINTR)
            return usbvm_error_set(err, USBVM_E_FAILED, EINTR,
                                   "another usbvm process has been attaching or detaching this "
                                   "device for too long; check 'usbvm status' and try again");
        return usbvm_error_set(err, USBVM_E_FAILED, -r, "cannot lock %s: %s", path, strerror(-r));
    }
    *ret = (UsbvmHostLock){ .fd = fd, .slot = slot };
    return 0;
}

void usbvm_hostlock_release(UsbvmHostLock *l)
{
    if (!l || l->fd < 0)
        return;
    /* Closing the last descriptor of the open file description releases its locks. */
    close(l->fd);
    l->fd = -1;
}

/* This process's own bumps, the last OWN_MAX of them, each with the lock file it went to: a
 * daemon whose threads attach one after the other knows its own changes (their answers update
 * its snapshot) and must not take them for another process's, which it would have to read. */
#define OWN_MAX 1024
static pthread_mutex_t own_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    dev_t dev;
    ino_t ino;
    uint64_t gen;
} own[OWN_MAX];
static size_t own_next;

static void own_record(int fd, uint64_t g)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return; /* unrecorded: counted as another process's, which only costs a read */
    pthread_mutex_lock(&own_lock);
    own[own_next % OWN_MAX].dev = st.st_dev;
    own[own_next % OWN_MAX].ino = st.st_ino;
    own[own_next % OWN_MAX].gen = g;
    own_next++;
    pthread_mutex_unlock(&own_lock);
}

/* Whether a generation in (since, g] was made by another process: each of them must be one of
 * ours, counted once (a lock file made anew can have an old one's inode number). */
static bool foreign_since(int fd, uint64_t since, uint64_t g)
{
    struct stat st;
    if (g < since || fstat(fd, &st) < 0)
        return true; /* a new lock file, or an unreadable one */
    if (g - since > OWN_MAX)
        return true; /* more than we remember */
    bool seen[OWN_MAX] = { false };
    uint64_t mine = 0;
    pthread_mutex_lock(&own_lock);
    for (size_t i = 0; i < OWN_MAX && i < own_next; i++)
        if (own[i].dev == st.st_dev && own[i].ino == st.st_ino && own[i].gen > since &&
            own[i].gen <= g && !seen[own[i].gen - since - 1]) {
            seen[own[i].gen - since - 1] = true;
            mine++;
        }
    pthread_mutex_unlock(&own_lock);
    return mine < g - since;
}

static int generation_rw(const UsbvmHostLock *l, bool bump, uint64_t since, uint64_t *ret,
                         bool *ret_foreign)
{
    int r = lock_range(l->fd, F_WRLCK, 0, true);
    if (r < 0)
        return r;
    uint64_t g = 0;
    ssize_t n = pread(l->fd, &g, sizeof(g), 0);
    if (n != (ssize_t)sizeof(g))
        g = 0; /* a new file */
    if (bump) {
        g++;
        if (pwrite(l->fd, &g, sizeof(g), 0) != (ssize_t)sizeof(g))
            r = -errno;
        else
            own_record(l->fd, g); /* before the unlock: no reader sees it unrecorded */
    }
    if (ret_foreign)
        *ret_foreign = foreign_since(l->fd, since, g);
    struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = SLOT_LEN };
    (void)fcntl(l->fd, F_OFD_SETLK, &fl);
    if (r < 0)
        return r;
    *ret = g;
    return 0;
}

int usbvm_hostlock_generation(const UsbvmHostLock *l, uint64_t *ret)
{
    return generation_rw(l, false, 0, ret, NULL);
}

int usbvm_hostlock_bump(const UsbvmHostLock *l, uint64_t *ret)
{
    return generation_rw(l, true, 0, ret, NULL);
}

int usbvm_hostlock_changed_since(const UsbvmHostLock *l, uint64_t since, bool *ret)
{
    uint64_t g;
    return generation_rw(l, false, since, &g, ret);
}

/* A slot's stamp: milliseconds of CLOCK_BOOTTIME in the high 40 bits (34 years), 24 bits of the
 * alias's hash below, so that another identity hashed to the same slot does not count. 0: none. */
static uint64_t boottime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t alias_tag(const char *alias)
{
    return usbvm_hash64(alias, strlen(alias)) & 0xffffff;
}

static int stamp_write(const UsbvmHostLock *l, uint64_t v)
{
    if (pwrite(l->fd, &v, sizeof(v), (off_t)(l->slot * SLOT_LEN)) != (ssize_t)sizeof(v))
        return -errno;
    return 0;
}

int usbvm_hostlock_detach_mark(const UsbvmHostLock *l, const char *alias)
{
    return stamp_write(l, (boottime_ms() + 1) << 24 | alias_tag(alias));
}

int usbvm_hostlock_detach_clear(const UsbvmHostLock *l)
{
    return stamp_write(l, 0);
}

int usbvm_hostlock_detach_asked(const UsbvmHostLock *l, const char *alias, uint64_t *ret_ms)
{
    uint64_t v = 0;
    ssize_t n = pread(l->fd, &v, sizeof(v), (off_t)(l->slot * SLOT_LEN));
    if (n < 0)
        return -errno;
    if (n != (ssize_t)sizeof(v) || v == 0 || (v & 0xffffff) != alias_tag(alias))
        return 0; /* never stamped (a sparse hole reads as 0), or another identity's */
    uint64_t then = (v >> 24) - 1, now = boottime_ms();
    if (then > now || now - then >= USBVM_HOSTLOCK_DETACH_SETTLE_MS)
        return 0; /* old, or from before a reboot of a lock file that outlived it */
    *ret_ms = now - then;
    return 1;
}
