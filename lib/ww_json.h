/* ww_json: a small strict JSON reader (RFC 8259): the agent's OTLP/HTTP receiver reads the
 * JSON encoding of an export with it, and tests read the repository's JSON files (the
 * Grafana dashboards). A DOM of nodes; no dependency beyond libc.
 *
 * Strict: no trailing commas, comments, control characters in strings, lone surrogates,
 * duplicate object keys, nesting deeper than WW_JSON_MAX_DEPTH or objects of more than
 * WW_JSON_MAX_MEMBERS members. Bounded for input from the network: at most max_values
 * values in all (each costs a node, ~80 bytes), so the memory a body can make the reader
 * take is known before it is read; the duplicate-key check costs at most
 * WW_JSON_MAX_MEMBERS comparisons per member.
 *
 * Numbers keep their text beside the double, so that a 64-bit integer (an OTLP time in
 * Unix ns) is read exactly (ww_json_int64), never through a double. */
#ifndef WW_JSON_H
#define WW_JSON_H

#include <stddef.h>
#include <stdint.h>

#define WW_JSON_MAX_DEPTH 128
#define WW_JSON_MAX_MEMBERS 1024

typedef enum {
    WW_JSON_NULL,
    WW_JSON_BOOL,
    WW_JSON_NUM,
    WW_JSON_STR,
    WW_JSON_ARR,
    WW_JSON_OBJ
} ww_json_type_t;

typedef struct ww_json ww_json_t;
struct ww_json {
    ww_json_type_t type;
    int boolean;       /* WW_JSON_BOOL */
    double num;        /* WW_JSON_NUM */
    char *str;         /* WW_JSON_STR: UTF-8, NUL-terminated (an embedded \u0000 is refused);
                          WW_JSON_NUM: the number's text as written */
    size_t n;          /* WW_JSON_ARR, WW_JSON_OBJ: number of items */
    ww_json_t **items; /* WW_JSON_ARR, WW_JSON_OBJ: the values, in document order */
    char **keys;       /* WW_JSON_OBJ: the keys, parallel to items */
    size_t cap;        /* allocated items (and keys) */
    int line, col;     /* where the value starts (1-based) */
};

/* Parses the NUL-terminated text, refusing more than max_values values (0: no limit).
 * Returns the root (free with ww_json_free) or NULL with "line L, column C: why" in err (err
 * may be NULL). */
ww_json_t *ww_json_parse(const char *text, size_t max_values, char *err, size_t errcap);

/* Frees a tree; safe on NULL, sets *v to NULL. */
void ww_json_free(ww_json_t **v);

/* The value of key in an object; NULL when absent or v is not an object. */
const ww_json_t *ww_json_get(const ww_json_t *v, const char *key);

/* The string of a WW_JSON_STR; NULL for anything else (NULL included). */
const char *ww_json_str(const ww_json_t *v);

/* 1 for WW_JSON_BOOL true, 0 for anything else. */
int ww_json_is_true(const ww_json_t *v);

/* A 64-bit integer written as a JSON integer or as a string of one (proto3's JSON form of
 * int64): 0 and *out set; -EINVAL for anything else (a fraction, an exponent, another
 * type), -ERANGE past int64. */
int ww_json_int64(const ww_json_t *v, int64_t *out);

/* A number, or a string of one or "NaN" / "Infinity" / "-Infinity" (proto3's JSON form of
 * double): 0 and *out set; -EINVAL for anything else. */
int ww_json_double(const ww_json_t *v, double *out);

#endif
