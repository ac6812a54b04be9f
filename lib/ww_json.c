/* ww_json: see ww_json.h. Recursive descent over the NUL-terminated text. */
#include "ww_json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *p;
    const char *line_start;
    int line;
    char *err;
    size_t errcap;
    int failed;
    size_t values, max_values; /* made so far; the limit (0: none) */
} s_cur_t;

static void s_fail(s_cur_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_fail(s_cur_t *c, const char *fmt, ...)
{
    if (c->failed) {
        return;
    }
    c->failed = 1;
    if (!c->err || c->errcap == 0) {
        return;
    }
    int n = snprintf(c->err, c->errcap, "line %d, column %d: ", c->line,
                     (int)(c->p - c->line_start) + 1);
    if (n >= 0 && (size_t)n < c->errcap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err + n, c->errcap - (size_t)n, fmt, ap);
        va_end(ap);
    }
}

static void s_ws(s_cur_t *c)
{
    for (;;) {
        char ch = *c->p;
        if (ch == '\n') {
            c->p++;
            c->line++;
            c->line_start = c->p;
        } else if (ch == ' ' || ch == '\t' || ch == '\r') {
            c->p++;
        } else {
            return;
        }
    }
}

static ww_json_t *s_node(s_cur_t *c, ww_json_type_t type)
{
    if (c->max_values && ++c->values > c->max_values) {
        s_fail(c, "more than %zu values", c->max_values);
        return NULL;
    }
    ww_json_t *v = calloc(1, sizeof *v);
    if (!v) {
        s_fail(c, "out of memory");
        return NULL;
    }
    v->type = type;
    v->line = c->line;
    v->col = (int)(c->p - c->line_start) + 1;
    return v;
}

static int s_hex4(s_cur_t *c, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char h = c->p[i];
        v <<= 4;
        if (h >= '0' && h <= '9') {
            v |= (unsigned)(h - '0');
        } else if (h >= 'a' && h <= 'f') {
            v |= (unsigned)(h - 'a' + 10);
        } else if (h >= 'A' && h <= 'F') {
            v |= (unsigned)(h - 'A' + 10);
        } else {
            s_fail(c, "bad \\u escape");
            return -1;
        }
    }
    c->p += 4;
    *out = v;
    return 0;
}

static size_t s_utf8(unsigned cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* At the opening quote; returns a malloc'd string. Escapes only shrink the text, so the
 * output never needs more than the input's length. */
static char *s_string(s_cur_t *c)
{
    c->p++;
    const char *end = c->p;
    while (*end && *end != '"') {
        end += (*end == '\\' && end[1]) ? 2 : 1;
    }
    char *out = malloc((size_t)(end - c->p) + 1);
    if (!out) {
        s_fail(c, "out of memory");
        return NULL;
    }
    size_t n = 0;
    for (;;) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '\0') {
            s_fail(c, "unterminated string");
            break;
        }
        if (ch < 0x20) {
            s_fail(c, "control character in a string");
            break;
        }
        if (ch == '"') {
            c->p++;
            out[n] = '\0';
            return out;
        }
        if (ch != '\\') {
            out[n++] = (char)ch;
            c->p++;
            continue;
        }
        c->p++;
        char e = *c->p++;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            out[n++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
            continue;
        }
        if (e != 'u') {
            c->p--;
            s_fail(c, "bad escape");
            break;
        }
        unsigned cp;
        if (s_hex4(c, &cp) < 0) {
            break;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo;
            if (c->p[0] != '\\' || c->p[1] != 'u') {
                s_fail(c, "lone high surrogate");
                break;
            }
            c->p += 2;
            if (s_hex4(c, &lo) < 0) {
                break;
            }
            if (lo < 0xDC00 || lo > 0xDFFF) {
                s_fail(c, "bad low surrogate");
                break;
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            s_fail(c, "lone low surrogate");
            break;
        } else if (cp == 0) {
            s_fail(c, "\\u0000 in a string");
            break;
        }
        n += s_utf8(cp, out + n);
    }
    free(out);
    return NULL;
}

static int s_digits(s_cur_t *c)
{
    if (*c->p < '0' || *c->p > '9') {
        s_fail(c, "digit expected");
        return -1;
    }
    while (*c->p >= '0' && *c->p <= '9') {
        c->p++;
    }
    return 0;
}

static ww_json_t *s_number(s_cur_t *c)
{
    const char *start = c->p;
    ww_json_t *v = s_node(c, WW_JSON_NUM);
    if (!v) {
        return NULL;
    }
    if (*c->p == '-') {
        c->p++;
    }
    if (*c->p == '0') {
        c->p++;
    } else if (s_digits(c) < 0) {
        goto bad;
    }
    if (*c->p == '.') {
        c->p++;
        if (s_digits(c) < 0) {
            goto bad;
        }
    }
    if (*c->p == 'e' || *c->p == 'E') {
        c->p++;
        if (*c->p == '+' || *c->p == '-') {
            c->p++;
        }
        if (s_digits(c) < 0) {
            goto bad;
        }
    }
    v->num = strtod(start, NULL);
    if (!isfinite(v->num)) {
        s_fail(c, "number out of range");
        goto bad;
    }
    v->str = strndup(start, (size_t)(c->p - start));
    if (!v->str) {
        s_fail(c, "out of memory");
        goto bad;
    }
    return v;
bad:
    free(v);
    return NULL;
}

static ww_json_t *s_value(s_cur_t *c, int depth);

static int s_push(s_cur_t *c, ww_json_t *v, ww_json_t *item, char *key)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 4;
        ww_json_t **items = realloc(v->items, cap * sizeof *items);
        if (items) {
            v->items = items;
        }
        char **keys = NULL;
        if (items && v->type == WW_JSON_OBJ && (keys = realloc(v->keys, cap * sizeof *keys))) {
            v->keys = keys;
        }
        if (!items || (v->type == WW_JSON_OBJ && !keys)) {
            s_fail(c, "out of memory");
            ww_json_free(&item);
            free(key);
            return -1;
        }
        v->cap = cap;
    }
    v->items[v->n] = item;
    if (v->type == WW_JSON_OBJ) {
        v->keys[v->n] = key;
    }
    v->n++;
    return 0;
}

static ww_json_t *s_container(s_cur_t *c, int depth, ww_json_type_t type)
{
    char close = type == WW_JSON_ARR ? ']' : '}';
    ww_json_t *v = s_node(c, type);
    if (!v) {
        return NULL;
    }
    c->p++;
    s_ws(c);
    if (*c->p == close) {
        c->p++;
        return v;
    }
    for (;;) {
        char *key = NULL;
        s_ws(c);
        if (type == WW_JSON_OBJ) {
            if (*c->p != '"') {
                s_fail(c, "object key (a string) expected");
                break;
            }
            if (v->n >= WW_JSON_MAX_MEMBERS) {
                s_fail(c, "an object of more than %d members", WW_JSON_MAX_MEMBERS);
                break;
            }
            if (!(key = s_string(c))) {
                break;
            }
            for (size_t i = 0; i < v->n; i++) {
                if (strcmp(v->keys[i], key) == 0) {
                    s_fail(c, "duplicate key \"%s\"", key);
                    break;
                }
            }
            s_ws(c);
            if (!c->failed && *c->p != ':') {
                s_fail(c, "':' expected");
            }
            if (c->failed) {
                free(key);
                break;
            }
            c->p++;
        }
        ww_json_t *item = s_value(c, depth + 1);
        if (!item) {
            free(key);
            break;
        }
        if (s_push(c, v, item, key) < 0) {
            break;
        }
        s_ws(c);
        if (*c->p == ',') {
            c->p++;
            s_ws(c);
            if (*c->p == close) {
                s_fail(c, "trailing comma");
                break;
            }
            continue;
        }
        if (*c->p == close) {
            c->p++;
            return v;
        }
        s_fail(c, "',' or '%c' expected", close);
        break;
    }
    ww_json_free(&v);
    return NULL;
}

static ww_json_t *s_value(s_cur_t *c, int depth)
{
    if (depth > WW_JSON_MAX_DEPTH) {
        s_fail(c, "nested deeper than %d", WW_JSON_MAX_DEPTH);
        return NULL;
    }
    s_ws(c);
    char ch = *c->p;
    if (ch == '{') {
        return s_container(c, depth, WW_JSON_OBJ);
    }
    if (ch == '[') {
        return s_container(c, depth, WW_JSON_ARR);
    }
    if (ch == '"') {
        ww_json_t *v = s_node(c, WW_JSON_STR);
        if (v && !(v->str = s_string(c))) {
            ww_json_free(&v);
        }
        return v;
    }
    if (ch == '-' || (ch >= '0' && ch <= '9')) {
        return s_number(c);
    }
    static const struct {
        const char *word;
        ww_json_type_t type;
        int boolean;
    } words[] = {{"true", WW_JSON_BOOL, 1}, {"false", WW_JSON_BOOL, 0}, {"null", WW_JSON_NULL, 0}};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t len = strlen(words[i].word);
        if (strncmp(c->p, words[i].word, len) == 0) {
            ww_json_t *v = s_node(c, words[i].type);
            if (v) {
                v->boolean = words[i].boolean;
                c->p += len;
            }
            return v;
        }
    }
    if (ch) {
        s_fail(c, "unexpected character '%c'", ch);
    } else {
        s_fail(c, "unexpected end of text");
    }
    return NULL;
}

ww_json_t *ww_json_parse(const char *text, size_t max_values, char *err, size_t errcap)
{
    s_cur_t c = {text, text, 1, err, errcap, 0, 0, max_values};
    if (err && errcap) {
        err[0] = '\0';
    }
    ww_json_t *root = s_value(&c, 0);
    if (root) {
        s_ws(&c);
        if (*c.p) {
            s_fail(&c, "text after the value");
            ww_json_free(&root);
        }
    }
    return root;
}

void ww_json_free(ww_json_t **v)
{
    if (!v || !*v) {
        return;
    }
    ww_json_t *t = *v;
    for (size_t i = 0; i < t->n; i++) {
        ww_json_free(&t->items[i]);
        if (t->keys) {
            free(t->keys[i]);
        }
    }
    free(t->items);
    free(t->keys);
    free(t->str);
    free(t);
    *v = NULL;
}

const ww_json_t *ww_json_get(const ww_json_t *v, const char *key)
{
    if (!v || v->type != WW_JSON_OBJ) {
        return NULL;
    }
    for (size_t i = 0; i < v->n; i++) {
        if (strcmp(v->keys[i], key) == 0) {
            return v->items[i];
        }
    }
    return NULL;
}

const char *ww_json_str(const ww_json_t *v)
{
    return v && v->type == WW_JSON_STR ? v->str : NULL;
}

int ww_json_is_true(const ww_json_t *v)
{
    return v && v->type == WW_JSON_BOOL && v->boolean;
}

int ww_json_int64(const ww_json_t *v, int64_t *out)
{
    if (!v || (v->type != WW_JSON_NUM && v->type != WW_JSON_STR)) {
        return -EINVAL;
    }
    const char *t = v->str;
    size_t i = t[0] == '-';
    if (t[i] == '\0' || strspn(t + i, "0123456789") != strlen(t + i)) {
        return -EINVAL; /* a fraction, an exponent, or not a number */
    }
    errno = 0;
    char *end;
    long long x = strtoll(t, &end, 10);
    if (errno == ERANGE) {
        return -ERANGE;
    }
    *out = (int64_t)x;
    return 0;
}

int ww_json_double(const ww_json_t *v, double *out)
{
    if (v && v->type == WW_JSON_NUM) {
        *out = v->num;
        return 0;
    }
    if (!v || v->type != WW_JSON_STR) {
        return -EINVAL;
    }
    static const struct {
        const char *text;
        double x;
    } special[] = {{"NaN", NAN}, {"Infinity", INFINITY}, {"-Infinity", -INFINITY}};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) {
        if (strcmp(v->str, special[i].text) == 0) {
            *out = special[i].x;
            return 0;
        }
    }
    /* A number in a string: JSON's own grammar, so parse it as a value. */
    ww_json_t *n = ww_json_parse(v->str, 1, NULL, 0);
    if (!n || n->type != WW_JSON_NUM) {
        ww_json_free(&n);
        return -EINVAL;
    }
    *out = n->num;
    ww_json_free(&n);
    return 0;
}
