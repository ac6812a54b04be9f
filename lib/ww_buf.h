/* ww_buf: one growable byte buffer, for text (Prometheus exposition, JSON, PostgreSQL array
 * literals) and binary (COPY streams) alike.
 *
 * Invariants: `p` is NULL until the first append, then holds `len` bytes followed by a NUL
 * (so text can be handed on as a C string) in an allocation of `cap` bytes (len < cap).
 * Appends never fail loudly: when an allocation fails (or a size would overflow) `oom` is
 * set and sticks, every later append is a no-op, and the caller checks `oom` once at the
 * end instead of after every append. The memory is the caller's: release it with
 * ww_buf_free() or take it with ww_buf_take().
 *
 * A zeroed struct (WW_BUF_INIT, `= {0}`) is an empty buffer; there is no init to call.
 */
#ifndef WW_BUF_H
#define WW_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *p;    /* the bytes, NUL-terminated; NULL before the first append */
    size_t len; /* bytes held, not counting the NUL */
    size_t cap; /* bytes allocated */
    bool oom;   /* an allocation failed: the content is incomplete (sticky until reset) */
} ww_buf_t;

#define WW_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0, false                                                                          \
    }

/* Makes room for `more` bytes beyond len (and the NUL), growing by doubling from 256.
 * Sets oom when that fails or len + more overflows size_t. */
void ww_buf_reserve(ww_buf_t *b, size_t more);

/* Appends n bytes of p (which may hold NULs). */
void ww_buf_put(ww_buf_t *b, const void *p, size_t n);

/* Appends the C string s, without its NUL. */
void ww_buf_puts(ww_buf_t *b, const char *s);

/* Appends printf-formatted text. An encoding error (vsnprintf < 0) appends nothing and
 * does not set oom. */
void ww_buf_printf(ww_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends one text element of a PostgreSQL array literal being written between "{" and
 * "}": a comma unless first, then s double-quoted with " and \ escaped, so any text is
 * safe (NULL elements are not written this way). */
void ww_buf_pg_elem(ww_buf_t *b, const char *s, bool first);

/* Empties the buffer and clears oom, keeping its memory for reuse. */
void ww_buf_reset(ww_buf_t *b);

/* Hands the bytes to the caller (free() them), leaving b empty: NULL when oom (the bytes
 * are then freed) or when nothing was ever appended. */
char *ww_buf_take(ww_buf_t *b);

/* Frees the memory and zeroes b; safe on NULL and twice. */
void ww_buf_free(ww_buf_t *b);

#endif
