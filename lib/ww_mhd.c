/* ww_mhd: see ww_mhd.h. */
#include "ww_mhd.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* Every function of the table, by the name dlsym looks up. */
#define SYM(fn, field)                                                                             \
    {                                                                                              \
#fn, offsetof(ww_mhd_t, field)                                                             \
    }
static const struct {
    const char *name;
    size_t off;
} s_syms[] = {
    SYM(MHD_start_daemon, start_daemon),
    SYM(MHD_stop_daemon, stop_daemon),
    SYM(MHD_create_response_from_buffer, create_response_from_buffer),
    SYM(MHD_add_response_header, add_response_header),
    SYM(MHD_queue_response, queue_response),
    SYM(MHD_destroy_response, destroy_response),
};
#undef SYM
_Static_assert(sizeof s_syms / sizeof s_syms[0] ==
                   (sizeof(ww_mhd_t) - sizeof(void *)) / sizeof(void (*)(void)),
               "every function pointer of ww_mhd_t has its line in s_syms");

int ww_mhd_open(ww_mhd_t *api, const char *soname, char *why, size_t why_cap)
{
    memset(api, 0, sizeof *api);
    dlerror(); /* clear a stale error */
    api->handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!api->handle) {
        const char *err = dlerror();
        snprintf(why, why_cap, "cannot load %s: %s (install " WW_MHD_PACKAGE ")", soname,
                 err ? err : "dlopen failed");
        return -ENOENT;
    }
    for (size_t i = 0; i < sizeof s_syms / sizeof s_syms[0]; i++) {
        dlerror();
        void *sym = dlsym(api->handle, s_syms[i].name);
        if (!sym) {
            const char *err = dlerror();
            snprintf(why, why_cap, "cannot load %s: %s (install " WW_MHD_PACKAGE ")", soname,
                     err ? err : "a function resolves to NULL");
            ww_mhd_close(api);
            return -ENOENT;
        }
        /* ISO C has no cast from void * to a function pointer; POSIX guarantees the bits. */
        memcpy((char *)api + s_syms[i].off, &sym, sizeof sym);
    }
    return 0;
}

void ww_mhd_close(ww_mhd_t *api)
{
    if (api->handle) {
        dlclose(api->handle);
    }
    memset(api, 0, sizeof *api);
}

/* The process-wide table. It is never unloaded: a server thread may still be running code
 * of it at exit, and unloading it would save nothing a process keeps. */
static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static ww_mhd_t s_api;
static int s_rc;
static char s_why[512];

static void s_load(void)
{
    s_rc = ww_mhd_open(&s_api, WW_MHD_SONAME, s_why, sizeof s_why);
}

const ww_mhd_t *ww_mhd_get(char *why, size_t why_cap)
{
    pthread_once(&s_once, s_load);
    if (s_rc < 0) {
        snprintf(why, why_cap, "%s", s_why);
        return NULL;
    }
    return &s_api;
}
