/* tjson: a small strict JSON reader (RFC 8259) for tests that check JSON files of the
 * repository, e.g. the Grafana dashboards. A DOM of nodes; no dependency beyond libc.
 * Strict: no trailing commas, comments, control characters in strings, lone surrogates,
 * duplicate object keys or nesting deeper than 128. */
#ifndef TJSON_H
#define TJSON_H

#include <stddef.h>

typedef enum { TJ_NULL, TJ_BOOL, TJ_NUM, TJ_STR, TJ_ARR, TJ_OBJ } tj_type_t;

typedef struct tj tj_t;
struct tj {
    tj_type_t type;
    int boolean;   /* TJ_BOOL */
    double num;    /* TJ_NUM */
    char *str;     /* TJ_STR: UTF-8, NUL-terminated (an embedded \u0000 is refused) */
    size_t n;      /* TJ_ARR, TJ_OBJ: number of items */
    tj_t **items;  /* TJ_ARR, TJ_OBJ: the values, in document order */
    char **keys;   /* TJ_OBJ: the keys, parallel to items */
    int line, col; /* where the value starts (1-based) */
};

/* Parses text. Returns the root (free with tj_free) or NULL with "line L, column C: why" in
 * err (err may be NULL). */
tj_t *tj_parse(const char *text, char *err, size_t errcap);
/* Frees a tree; safe on NULL, sets *v to NULL. */
void tj_free(tj_t **v);

/* The value of key in an object; NULL when absent or v is not an object. */
const tj_t *tj_get(const tj_t *v, const char *key);
/* The string of a TJ_STR; NULL for anything else (NULL included). */
const char *tj_str(const tj_t *v);
/* 1 for TJ_BOOL true, 0 for anything else. */
int tj_is_true(const tj_t *v);

#endif
