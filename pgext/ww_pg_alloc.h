/* ww_pg_alloc: the allocator lib/ww_hist*.c use inside the PostgreSQL extension (they are
 * compiled with -DWW_HIST_REALLOC=ww_pg_realloc -DWW_HIST_FREE=ww_pg_free and this header
 * force-included). Memory comes from palloc: a new block from CurrentMemoryContext, a
 * grown one stays in the context it was allocated in, so a histogram that lives in an
 * aggregate's context keeps its buckets there however it grows. */
#ifndef WW_PG_ALLOC_H
#define WW_PG_ALLOC_H

#include <stddef.h>

/* realloc() semantics: p NULL allocates n bytes in CurrentMemoryContext; else p (from
 * palloc) is grown or shrunk to n bytes in its own context. NULL when out of memory
 * (the caller reports -ENOMEM), never an ERROR. */
void *ww_pg_realloc(void *p, size_t n);

/* pfree(p); nothing for NULL (as free()). */
void ww_pg_free(void *p);

#endif
