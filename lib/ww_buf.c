/* ww_buf: see ww_buf.h. */
#include "ww_buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ww_buf_reserve(ww_buf_t *b, size_t more)
{
    if (b->oom) {
        return;
    }
    if (more > SIZE_MAX - 1 - b->len) {
        b->oom = true;
        return;
    }
    size_t need = b->len + more + 1;
    if (need <= b->cap) {
        return;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            b->oom = true;
            return;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return;
    }
    b->p = p;
    b->cap = cap;
}

void ww_buf_put(ww_buf_t *b, const void *p, size_t n)
{
    ww_buf_reserve(b, n);
    if (b->oom) {
        return;
    }
    if (n > 0) {
        memcpy(b->p + b->len, p, n);
    }
    b->len += n;
    b->p[b->len] = '\0';
}

void ww_buf_puts(ww_buf_t *b, const char *s)
{
    ww_buf_put(b, s, strlen(s));
}

void ww_buf_printf(ww_buf_t *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n < sizeof small) {
        ww_buf_put(b, small, (size_t)n);
        return;
    }
    ww_buf_reserve(b, (size_t)n);
    if (b->oom) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void ww_buf_pg_elem(ww_buf_t *b, const char *s, bool first)
{
    ww_buf_puts(b, first ? "\"" : ",\"");
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            ww_buf_put(b, "\\", 1);
        }
        ww_buf_put(b, p, 1);
    }
    ww_buf_put(b, "\"", 1);
}

void ww_buf_reset(ww_buf_t *b)
{
    b->len = 0;
    b->oom = false;
    if (b->p) {
        b->p[0] = '\0';
    }
}

char *ww_buf_take(ww_buf_t *b)
{
    char *p = b->oom ? NULL : b->p;
    if (b->oom) {
        free(b->p);
    }
    *b = (ww_buf_t)WW_BUF_INIT;
    return p;
}

void ww_buf_free(ww_buf_t *b)
{
    if (!b) {
        return;
    }
    free(b->p);
    *b = (ww_buf_t)WW_BUF_INIT;
}
