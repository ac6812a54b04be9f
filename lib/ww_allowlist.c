/* ww_allowlist: see ww_allowlist.h. */
#include "ww_allowlist.h"

#include "ww_curve.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WW_ALLOWLIST_MAX_PATTERNS 64
#define WW_ALLOWLIST_MAX_FILE (16u << 20)

void ww_allowlist_free(ww_allowlist_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].agent_id);
        for (size_t k = 0; k < l->v[i].n_patterns; k++) {
            free(l->v[i].patterns[k]);
        }
        free(l->v[i].patterns);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int s_cmp_entry(const void *a, const void *b)
{
    return strcmp(((const ww_allowlist_entry_t *)a)->key, ((const ww_allowlist_entry_t *)b)->key);
}

static int s_fail(char *why, size_t why_len, const char *name, int line, const char *msg)
{
    snprintf(why, why_len, "%s:%d: %s", name, line, msg);
    return -EINVAL;
}

int ww_allowlist_parse(const char *text, size_t len, const char *name, ww_allowlist_t *out,
                       char *why, size_t why_len)
{
    memset(out, 0, sizeof *out);
    char *buf = malloc(len + 1);
    if (!buf) {
        return -ENOMEM;
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    int rc = 0, lineno = 0;
    size_t cap = 0;
    char *save_line = NULL;
    for (char *line = buf; line && rc == 0; line = save_line) {
        save_line = strchr(line, '\n');
        if (save_line) {
            *save_line++ = '\0';
        }
        lineno++;
        char *fields[2 + WW_ALLOWLIST_MAX_PATTERNS];
        size_t nf = 0;
        char *tok_save = NULL;
        for (char *tok = strtok_r(line, " \t\r", &tok_save); tok;
             tok = strtok_r(NULL, " \t\r", &tok_save)) {
            /* '#' starts a comment, but Z85 keys may contain it, even first: a first
             * token that is a valid key is a key. */
            if (tok[0] == '#' && !(nf == 0 && ww_curve_z85_ok(tok))) {
                break;
            }
            if (nf == sizeof fields / sizeof fields[0]) {
                rc = s_fail(why, why_len, name, lineno, "too many node patterns (64 at most)");
                break;
            }
            fields[nf++] = tok;
        }
        if (rc != 0 || nf == 0) {
            continue;
        }
        if (nf < 3) {
            rc = s_fail(why, why_len, name, lineno,
                        "expected: <public key> <agent_id> <node pattern> [...]");
            break;
        }
        if (!ww_curve_z85_ok(fields[0])) {
            rc = s_fail(why, why_len, name, lineno, "the key is not a 40-character Z85 key");
            break;
        }
        if (strlen(fields[1]) > 128) {
            rc = s_fail(why, why_len, name, lineno, "agent_id longer than 128 bytes");
            break;
        }
        if (out->n == cap) {
            cap = cap ? cap * 2 : 16;
            ww_allowlist_entry_t *nv = realloc(out->v, cap * sizeof *nv);
            if (!nv) {
                rc = -ENOMEM;
                break;
            }
            out->v = nv;
        }
        ww_allowlist_entry_t *e = &out->v[out->n];
        memset(e, 0, sizeof *e);
        memcpy(e->key, fields[0], WW_Z85_KEY_LEN + 1);
        e->agent_id = strdup(fields[1]);
        e->patterns = calloc(nf - 2, sizeof *e->patterns);
        out->n++;
        if (!e->agent_id || !e->patterns) {
            rc = -ENOMEM;
            break;
        }
        for (size_t k = 2; k < nf; k++) {
            if (!(e->patterns[e->n_patterns++] = strdup(fields[k]))) {
                rc = -ENOMEM;
                break;
            }
        }
    }
    free(buf);
    if (rc == 0 && out->n > 1) {
        qsort(out->v, out->n, sizeof *out->v, s_cmp_entry);
        for (size_t i = 1; i < out->n; i++) {
            if (strcmp(out->v[i - 1].key, out->v[i].key) == 0) {
                snprintf(why, why_len, "%s: key %.8s... is listed twice", name, out->v[i].key);
                rc = -EINVAL;
                break;
            }
        }
    }
    if (rc != 0) {
        if (rc == -ENOMEM) {
            snprintf(why, why_len, "%s: out of memory", name);
        }
        ww_allowlist_free(out);
    }
    return rc;
}

int ww_allowlist_check(const char *text, size_t len, const char *name, char *why, size_t why_len)
{
    ww_allowlist_t l;
    int rc = ww_allowlist_parse(text, len, name, &l, why, why_len);
    ww_allowlist_free(&l);
    return rc;
}

int ww_allowlist_load(const char *path, ww_allowlist_t *out, char *why, size_t why_len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        snprintf(why, why_len, "%s: %s", path, strerror(e));
        return -e;
    }
    char *text = malloc(WW_ALLOWLIST_MAX_FILE);
    size_t len = text ? fread(text, 1, WW_ALLOWLIST_MAX_FILE, f) : 0;
    int big = text && !feof(f);
    fclose(f);
    if (!text) {
        return -ENOMEM;
    }
    int rc;
    if (big) {
        snprintf(why, why_len, "%s: larger than 16 MiB", path);
        rc = -EFBIG;
    } else {
        rc = ww_allowlist_parse(text, len, path, out, why, why_len);
    }
    free(text);
    return rc;
}

int ww_allowlist_load_check(const char *path, char *why, size_t why_len)
{
    ww_allowlist_t l;
    memset(&l, 0, sizeof l);
    int rc = ww_allowlist_load(path, &l, why, why_len);
    int n = rc < 0 ? rc : (int)l.n;
    ww_allowlist_free(&l);
    return n;
}

const ww_allowlist_entry_t *ww_allowlist_find(const ww_allowlist_t *l, const char *key)
{
    if (l->n == 0) {
        return NULL; /* bsearch on an empty (NULL) array is undefined */
    }
    ww_allowlist_entry_t probe;
    memset(&probe, 0, sizeof probe);
    snprintf(probe.key, sizeof probe.key, "%s", key);
    return bsearch(&probe, l->v, l->n, sizeof *l->v, s_cmp_entry);
}
