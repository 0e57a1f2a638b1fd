/* libvirt, loaded on first use. Linking libvirt.so.0 costs every usbvm process about 10 ms
 * before main(): it brings in 57 libraries (GnuTLS, GLib, Kerberos, ICU...) whose symbols the
 * dynamic linker resolves at once. `usbvm list`, `show`, `rules` and completion need libvirt
 * late or not at all, so the binary does not link it: the functions below carry libvirt's own
 * names and prototypes (the compiler checks them against libvirt's headers), load libvirt.so.0
 * the first time any of them is called, and pass the call on. When libvirt cannot be loaded
 * they fail the way libvirt fails (NULL or -1, and no error object); usbvm_virt_load() says
 * why. libvirt-qemu.so.0 is loaded separately, only for its one function. */
#include "virt.h"

#include <dlfcn.h>
#include <errno.h>
#include <libvirt/libvirt-qemu.h>
#include <pthread.h>
#include <stdio.h>

#define LIBVIRT_SONAME      "libvirt.so.0"
#define LIBVIRT_QEMU_SONAME "libvirt-qemu.so.0"

/* Every libvirt function usbvm calls: return type, name, parameters, arguments, what to return
 * when libvirt is missing. */
#define LIBVIRT_FUNCTIONS(X)                                                                       \
    X(int, virConnectClose, (virConnectPtr c), (c), -1)                                            \
    X(int, virConnectDomainEventDeregisterAny, (virConnectPtr c, int id), (c, id), -1)             \
    X(int, virConnectDomainEventRegisterAny,                                                       \
      (virConnectPtr c, virDomainPtr d, int ev, virConnectDomainEventGenericCallback cb,           \
       void *opaque, virFreeCallback ff),                                                          \
      (c, d, ev, cb, opaque, ff), -1)                                                              \
    X(int, virConnectGetLibVersion, (virConnectPtr c, unsigned long *v), (c, v), -1)               \
    X(char *, virConnectGetURI, (virConnectPtr c), (c), NULL)                                      \
    X(int, virConnectListAllDomains, (virConnectPtr c, virDomainPtr * *doms, unsigned int flags),  \
      (c, doms, flags), -1)                                                                        \
    X(virConnectPtr, virConnectOpen, (const char *name), (name), NULL)                             \
    X(int, virConnectRef, (virConnectPtr c), (c), -1)                                              \
    X(int, virConnectRegisterCloseCallback,                                                        \
      (virConnectPtr c, virConnectCloseFunc cb, void *opaque, virFreeCallback ff),                 \
      (c, cb, opaque, ff), -1)                                                                     \
    X(int, virConnectSetKeepAlive, (virConnectPtr c, int interval, unsigned int count),            \
      (c, interval, count), -1)                                                                    \
    X(int, virConnectUnregisterCloseCallback, (virConnectPtr c, virConnectCloseFunc cb), (c, cb),  \
      -1)                                                                                          \
    X(int, virDomainAgentSetResponseTimeout, (virDomainPtr d, int timeout, unsigned int flags),    \
      (d, timeout, flags), -1)                                                                     \
    X(int, virDomainAttachDeviceFlags, (virDomainPtr d, const char *xml, unsigned int flags),      \
      (d, xml, flags), -1)                                                                         \
    X(int, virDomainDetachDeviceAlias, (virDomainPtr d, const char *alias, unsigned int flags),    \
      (d, alias, flags), -1)                                                                       \
    X(int, virDomainFSFreeze,                                                                      \
      (virDomainPtr d, const char **mounts, unsigned int n, unsigned int flags),                   \
      (d, mounts, n, flags), -1)                                                                   \
    X(int, virDomainFSThaw,                                                                        \
      (virDomainPtr d, const char **mounts, unsigned int n, unsigned int flags),                   \
      (d, mounts, n, flags), -1)                                                                   \
    X(int, virDomainFree, (virDomainPtr d), (d), -1)                                               \
    X(virConnectPtr, virDomainGetConnect, (virDomainPtr d), (d), NULL)                             \
    X(int, virDomainGetGuestInfo,                                                                  \
      (virDomainPtr d, unsigned int types, virTypedParameterPtr *params, int *nparams,             \
       unsigned int flags),                                                                        \
      (d, types, params, nparams, flags), -1)                                                      \
    X(const char *, virDomainGetName, (virDomainPtr d), (d), NULL)                                 \
    X(char *, virDomainGetXMLDesc, (virDomainPtr d, unsigned int flags), (d, flags), NULL)         \
    X(int, virDomainIsActive, (virDomainPtr d), (d), -1)                                           \
    X(int, virDomainIsPersistent, (virDomainPtr d), (d), -1)                                       \
    X(virDomainPtr, virDomainLookupByName, (virConnectPtr c, const char *name), (c, name), NULL)   \
    X(virDomainPtr, virDomainLookupByUUIDString, (virConnectPtr c, const char *uuid), (c, uuid),   \
      NULL)                                                                                        \
    X(int, virDomainRef, (virDomainPtr d), (d), -1)                                                \
    X(int, virEventAddHandle,                                                                      \
      (int fd, int events, virEventHandleCallback cb, void *opaque, virFreeCallback ff),           \
      (fd, events, cb, opaque, ff), -1)                                                            \
    X(int, virEventAddTimeout,                                                                     \
      (int ms, virEventTimeoutCallback cb, void *opaque, virFreeCallback ff),                      \
      (ms, cb, opaque, ff), -1)                                                                    \
    X(int, virEventRegisterDefaultImpl, (void), (), -1)                                            \
    X(int, virEventRemoveHandle, (int watch), (watch), -1)                                         \
    X(int, virEventRemoveTimeout, (int timer), (timer), -1)                                        \
    X(int, virEventRunDefaultImpl, (void), (), -1)                                                 \
    X(virErrorPtr, virGetLastError, (void), (), NULL)                                              \
    X(const char *, virGetLastErrorMessage, (void), (), "libvirt is not loaded")                   \
    X(int, virInitialize, (void), (), -1)

/* The same for functions that return nothing. */
#define LIBVIRT_PROCEDURES(X)                                                                      \
    X(virResetLastError, (void), ())                                                               \
    X(virSetErrorFunc, (void *userdata, virErrorFunc handler), (userdata, handler))                \
    X(virTypedParamsFree, (virTypedParameterPtr params, int n), (params, n))

#define DECLARE_POINTER(ret, name, params, args, fail) static __typeof__(name) *real_##name;
#define DECLARE_PROC_POINTER(name, params, args)       static __typeof__(name) *real_##name;
LIBVIRT_FUNCTIONS(DECLARE_POINTER)
LIBVIRT_PROCEDURES(DECLARE_PROC_POINTER)
static __typeof__(virDomainQemuMonitorCommand) *real_virDomainQemuMonitorCommand;

typedef struct Loaded {
    pthread_once_t once;
    bool ok;
    char why[256]; /* dlerror()'s text when !ok */
} Loaded;

static Loaded libvirt = { .once = PTHREAD_ONCE_INIT };
static Loaded libvirt_qemu = { .once = PTHREAD_ONCE_INIT };

static void *open_library(const char *soname, Loaded *l)
{
    void *h = dlopen(soname, RTLD_LAZY | RTLD_LOCAL);
    if (!h)
        snprintf(l->why, sizeof(l->why), "%s", dlerror());
    return h;
}

/* Resolves one symbol; false (and l->why set) when the library lacks it. */
static bool resolve(void *h, const char *name, void **ptr, Loaded *l)
{
    *ptr = dlsym(h, name);
    if (!*ptr)
        snprintf(l->why, sizeof(l->why), "%s has no %s; usbvm needs libvirt 7.0 or later",
                 LIBVIRT_SONAME, name);
    return *ptr != NULL;
}

static void load_libvirt(void)
{
    void *h = open_library(LIBVIRT_SONAME, &libvirt);
    if (!h)
        return;
    bool ok = true;
#define RESOLVE(ret, name, params, args, fail)                                                     \
    ok = ok && resolve(h, #name, (void **)&real_##name, &libvirt);
#define RESOLVE_PROC(name, params, args)                                                           \
    ok = ok && resolve(h, #name, (void **)&real_##name, &libvirt);
    LIBVIRT_FUNCTIONS(RESOLVE)
    LIBVIRT_PROCEDURES(RESOLVE_PROC)
    libvirt.ok = ok; /* the library stays loaded either way: dlclose buys nothing here */
}

static void load_libvirt_qemu(void)
{
    void *h = open_library(LIBVIRT_QEMU_SONAME, &libvirt_qemu);
    libvirt_qemu.ok = h && resolve(h, "virDomainQemuMonitorCommand",
                                   (void **)&real_virDomainQemuMonitorCommand, &libvirt_qemu);
}

static bool loaded(void)
{
    pthread_once(&libvirt.once, load_libvirt);
    return libvirt.ok;
}

bool usbvm_virt_loaded(const char **why)
{
    if (loaded())
        return true;
    if (why)
        *why = libvirt.why;
    return false;
}

int usbvm_virt_load(UsbvmError *err)
{
    const char *why = NULL;
    if (usbvm_virt_loaded(&why))
        return 0;
    return usbvm_error_set(err, USBVM_E_LIBVIRT, ENOENT,
                           "cannot load libvirt: %s; install libvirt's client library "
                           "('apt install libvirt0')",
                           why);
}

/* Hidden: never exported, so a libvirt loaded at start (the sanitized builds) keeps calling its
 * own functions, never these. */
#define FORWARD_DECL __attribute__((visibility("hidden")))
#define DEFINE_FORWARD(ret, name, params, args, fail)                                              \
    FORWARD_DECL ret name params                                                                   \
    {                                                                                              \
        return loaded() ? real_##name args : fail;                                                 \
    }
#define DEFINE_PROC_FORWARD(name, params, args)                                                    \
    FORWARD_DECL void name params                                                                  \
    {                                                                                              \
        if (loaded())                                                                              \
            real_##name args;                                                                      \
    }
LIBVIRT_FUNCTIONS(DEFINE_FORWARD)
LIBVIRT_PROCEDURES(DEFINE_PROC_FORWARD)

FORWARD_DECL int virDomainQemuMonitorCommand(virDomainPtr d, const char *cmd, char **result,
                                             unsigned int flags)
{
    pthread_once(&libvirt_qemu.once, load_libvirt_qemu);
    return libvirt_qemu.ok ? real_virDomainQemuMonitorCommand(d, cmd, result, flags) : -1;
}
