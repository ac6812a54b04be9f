/* ww_dl: a library loaded at run time (dlopen) into a table of its functions, for what the
 * binaries use only when configured and must not need otherwise: libmicrohttpd (ww_mhd),
 * NVML (the agent's nvml source).
 */
#ifndef WW_DL_H
#define WW_DL_H

#include <stddef.h>

/* One function of the table: the symbol dlsym looks up, and the offset in the table of the
 * function pointer it fills. */
typedef struct {
    const char *name;
    size_t off;
} ww_dl_sym_t;

/* Loads soname (RTLD_NOW | RTLD_LOCAL) into *handle and every symbol of syms[0..n) into the
 * table at its offset. Returns 0; -ENOENT with the reason in why (the library, what the
 * loader said, or the first symbol it lacks), *handle then NULL and nothing left loaded. */
int ww_dl_open(void **handle, const char *soname, const ww_dl_sym_t *syms, size_t n, void *table,
               char *why, size_t why_cap);

#endif
