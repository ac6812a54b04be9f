/* ww_pg_alloc: see ww_pg_alloc.h. */
#include "postgres.h"

#include "ww_pg_alloc.h"

void *ww_pg_realloc(void *p, size_t n)
{
    if (n == 0) {
        n = 1; /* palloc(0) is legal, but a zero-size realloc may mean "free" to a caller */
    }
    if (!p) {
        return palloc_extended(n, MCXT_ALLOC_NO_OOM);
    }
    return repalloc_extended(p, n, MCXT_ALLOC_NO_OOM);
}

void ww_pg_free(void *p)
{
    if (p) {
        pfree(p);
    }
}
