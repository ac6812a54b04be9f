/* ww_dl: see ww_dl.h. */
#include "ww_dl.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

int ww_dl_open(void **handle, const char *soname, const ww_dl_sym_t *syms, size_t n, void *table,
               char *why, size_t why_cap)
{
    dlerror(); /* clear a stale error */
    *handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!*handle) {
        const char *err = dlerror();
        snprintf(why, why_cap, "cannot load %s: %s", soname, err ? err : "dlopen failed");
        return -ENOENT;
    }
    for (size_t i = 0; i < n; i++) {
        dlerror();
        void *sym = dlsym(*handle, syms[i].name);
        if (!sym) {
            const char *err = dlerror();
            snprintf(why, why_cap, "cannot load %s: it has no %s: %s", soname, syms[i].name,
                     err ? err : "it resolves to NULL");
            dlclose(*handle);
            *handle = NULL;
            return -ENOENT;
        }
        /* ISO C has no cast from void * to a function pointer; POSIX guarantees the bits. */
        memcpy((char *)table + syms[i].off, &sym, sizeof sym);
    }
    return 0;
}
