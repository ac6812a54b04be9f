/* auth: see auth.h. */
#define WW_LOG_MODULE "auth"
#include "auth.h"

#include "ww_curve.h"
#include "ww_log.h"
#include "ww_time.h"
#include "ww_zmon.h"

#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define WW_AUTH_MAX_PATTERNS 64
#define WW_AUTH_MAX_FILE (16u << 20)

typedef struct {
    char key[WW_Z85_KEY_LEN + 1];
    char *agent_id;
    char **patterns;
    size_t n_patterns;
} s_entry_t;

typedef struct {
    s_entry_t *v; /* sorted by key */
    size_t n;
} s_list_t;

struct ww_auth {
    char *path;
    void *zap;
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;
    pthread_mutex_t lock;
    s_list_t list;
    ww_auth_stats_t st;
    ww_zmon_limit_t limit; /* refused-connection lines (the ZAP thread's) */
};

static void s_list_free(s_list_t *l)
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
    return strcmp(((const s_entry_t *)a)->key, ((const s_entry_t *)b)->key);
}

static int s_fail(char *why, size_t why_len, const char *name, int line, const char *msg)
{
    snprintf(why, why_len, "%s:%d: %s", name, line, msg);
    return -EINVAL;
}

/* Parses the allowlist text into `out` (sorted). */
static int s_parse(const char *text, size_t len, const char *name, s_list_t *out, char *why,
                   size_t why_len)
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
        char *fields[2 + WW_AUTH_MAX_PATTERNS];
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
            s_entry_t *nv = realloc(out->v, cap * sizeof *nv);
            if (!nv) {
                rc = -ENOMEM;
                break;
            }
            out->v = nv;
        }
        s_entry_t *e = &out->v[out->n];
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
        s_list_free(out);
    }
    return rc;
}

int ww_auth_parse_check(const char *text, size_t len, const char *name, char *why, size_t why_len)
{
    s_list_t l;
    int rc = s_parse(text, len, name, &l, why, why_len);
    s_list_free(&l);
    return rc;
}

static int s_load(const char *path, s_list_t *out, char *why, size_t why_len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        snprintf(why, why_len, "%s: %s", path, strerror(e));
        return -e;
    }
    char *text = malloc(WW_AUTH_MAX_FILE);
    size_t len = text ? fread(text, 1, WW_AUTH_MAX_FILE, f) : 0;
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
        rc = s_parse(text, len, path, out, why, why_len);
    }
    free(text);
    return rc;
}

int ww_auth_load_check(const char *path, char *why, size_t why_len)
{
    s_list_t l;
    memset(&l, 0, sizeof l);
    int rc = s_load(path, &l, why, why_len);
    int n = rc < 0 ? rc : (int)l.n;
    s_list_free(&l);
    return n;
}

static const s_entry_t *s_find(const s_list_t *l, const char *key)
{
    if (l->n == 0) {
        return NULL; /* bsearch on an empty (NULL) array is undefined */
    }
    s_entry_t probe;
    memset(&probe, 0, sizeof probe);
    snprintf(probe.key, sizeof probe.key, "%s", key);
    return bsearch(&probe, l->v, l->n, sizeof *l->v, s_cmp_entry);
}

/* One ZAP request (RFC 27): version, request id, domain, address, identity, mechanism,
 * credentials. Admits CURVE clients whose key is enrolled; refuses everything else. */
static void s_zap_one(ww_auth_t *self)
{
    zmq_msg_t f[8];
    int n = 0, more = 1;
    while (more && n < 8) {
        zmq_msg_init(&f[n]);
        if (zmq_msg_recv(&f[n], self->zap, 0) < 0) {
            zmq_msg_close(&f[n]);
            for (int i = 0; i < n; i++) {
                zmq_msg_close(&f[i]);
            }
            return;
        }
        more = zmq_msg_more(&f[n]);
        n++;
    }
    while (more) { /* more frames than the protocol has: drain */
        zmq_msg_t x;
        zmq_msg_init(&x);
        zmq_msg_recv(&x, self->zap, 0);
        more = zmq_msg_more(&x);
        zmq_msg_close(&x);
    }
    const char *status = "400", *text = "not enrolled";
    char key[WW_Z85_KEY_LEN + 1] = "";
    if (n >= 7 && zmq_msg_size(&f[5]) == 5 && memcmp(zmq_msg_data(&f[5]), "CURVE", 5) == 0 &&
        zmq_msg_size(&f[6]) == 32) {
        zmq_z85_encode(key, zmq_msg_data(&f[6]), 32);
        pthread_mutex_lock(&self->lock);
        const s_entry_t *e = s_find(&self->list, key);
        pthread_mutex_unlock(&self->lock);
        if (e) {
            status = "200";
            text = "OK";
        }
    } else {
        text = "CURVE required";
    }
    char addr[64] = "";
    if (n >= 4) {
        size_t al = zmq_msg_size(&f[3]) < sizeof addr - 1 ? zmq_msg_size(&f[3]) : sizeof addr - 1;
        memcpy(addr, zmq_msg_data(&f[3]), al);
        addr[al] = '\0';
    }
    pthread_mutex_lock(&self->lock);
    if (status[0] == '2') {
        self->st.admitted++;
    } else {
        self->st.refused++;
    }
    pthread_mutex_unlock(&self->lock);
    if (status[0] == '2') {
        WW_DEBUG("admitted key %.8s... from %s", key, addr);
    } else {
        /* An unenrolled agent retries every few hundred ms: one line per interval, with a
         * count, keeps the log readable and the disk safe. */
        uint64_t unlogged = 0;
        if (ww_zmon_limit_take(&self->limit, ww_time_mono_ns(), &unlogged)) {
            char since[96] = "";
            if (unlogged > 0) {
                snprintf(since, sizeof since, " (and %llu more refused since the last such line)",
                         (unsigned long long)unlogged);
            }
            WW_WARN("refused a connection from %s: %s%s%s%s", addr, text, key[0] ? ", key " : "",
                    key, since);
        }
    }
    /* Reply: version, request id, status code, status text, user id, metadata. */
    zmq_send(self->zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(self->zap, n >= 2 ? zmq_msg_data(&f[1]) : "", n >= 2 ? zmq_msg_size(&f[1]) : 0,
             ZMQ_SNDMORE);
    zmq_send(self->zap, status, 3, ZMQ_SNDMORE);
    zmq_send(self->zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(self->zap, key, status[0] == '2' ? strlen(key) : 0, ZMQ_SNDMORE);
    zmq_send(self->zap, "", 0, 0);
    for (int i = 0; i < n; i++) {
        zmq_msg_close(&f[i]);
    }
}

static void *s_zap_thread(void *arg)
{
    ww_auth_t *self = arg;
    while (!atomic_load(&self->stop)) {
        zmq_pollitem_t item = {self->zap, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 100) > 0) {
            s_zap_one(self);
        }
    }
    return NULL;
}

ww_auth_t *ww_auth_new(void *zmq_ctx, const char *allowlist_path, char *why, size_t why_len)
{
    ww_auth_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    atomic_init(&self->stop, false);
    self->path = strdup(allowlist_path);
    if (!self->path || s_load(allowlist_path, &self->list, why, why_len) < 0) {
        ww_auth_destroy(&self);
        return NULL;
    }
    self->zap = zmq_socket(zmq_ctx, ZMQ_REP);
    int linger = 0;
    if (!self->zap || zmq_setsockopt(self->zap, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_bind(self->zap, "inproc://zeromq.zap.01") != 0) {
        snprintf(why, why_len, "cannot start the ZAP handler: %s", zmq_strerror(errno));
        ww_auth_destroy(&self);
        return NULL;
    }
    if (pthread_create(&self->thread, NULL, s_zap_thread, self) != 0) {
        snprintf(why, why_len, "cannot start the ZAP thread");
        ww_auth_destroy(&self);
        return NULL;
    }
    self->thread_started = true;
    WW_INFO("allowlist %s: %zu enrolled agent keys", self->path, self->list.n);
    return self;
}

void ww_auth_destroy(ww_auth_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    ww_auth_t *self = *self_p;
    if (self->thread_started) {
        atomic_store(&self->stop, true);
        pthread_join(self->thread, NULL);
    }
    if (self->zap) {
        zmq_close(self->zap);
    }
    s_list_free(&self->list);
    pthread_mutex_destroy(&self->lock);
    free(self->path);
    free(self);
    *self_p = NULL;
}

int ww_auth_reload(ww_auth_t *self)
{
    s_list_t fresh;
    char why[512];
    int rc = s_load(self->path, &fresh, why, sizeof why);
    if (rc < 0) {
        WW_ERROR("allowlist not reloaded, the previous one stays in force: %s", why);
        return rc;
    }
    pthread_mutex_lock(&self->lock);
    s_list_t old = self->list;
    self->list = fresh;
    pthread_mutex_unlock(&self->lock);
    s_list_free(&old);
    WW_INFO("allowlist %s reloaded: %zu enrolled agent keys", self->path, fresh.n);
    return (int)fresh.n;
}

int ww_auth_check(ww_auth_t *self, const char *key_z85, const char *agent_id, const char *node_id,
                  char *why, size_t why_len)
{
    int rc = 0;
    pthread_mutex_lock(&self->lock);
    const s_entry_t *e = key_z85 ? s_find(&self->list, key_z85) : NULL;
    if (!e) {
        snprintf(why, why_len, "key %.8s... is not enrolled (revoked?)", key_z85 ? key_z85 : "");
        rc = -EACCES;
    } else if (strcmp(e->agent_id, agent_id) != 0) {
        snprintf(why, why_len, "key %.8s... is enrolled as %s, not %s", key_z85, e->agent_id,
                 agent_id);
        rc = -EACCES;
    } else if (node_id) {
        rc = -EACCES;
        for (size_t k = 0; k < e->n_patterns; k++) {
            if (fnmatch(e->patterns[k], node_id, 0) == 0) {
                rc = 0;
                break;
            }
        }
        if (rc != 0) {
            snprintf(why, why_len, "%s may not write node %s", agent_id, node_id);
        }
    }
    pthread_mutex_unlock(&self->lock);
    return rc;
}

void ww_auth_stats(ww_auth_t *self, ww_auth_stats_t *out)
{
    pthread_mutex_lock(&self->lock);
    *out = self->st;
    pthread_mutex_unlock(&self->lock);
}

void ww_auth_describe(ww_auth_t *self, const char *key_z85, const char *agent_id, char *out,
                      size_t cap)
{
    char enrolled[160] = "";
    bool has_key = key_z85 && key_z85[0];
    bool has_agent = agent_id && agent_id[0];
    if (self && has_key) {
        pthread_mutex_lock(&self->lock);
        const s_entry_t *e = s_find(&self->list, key_z85);
        if (e && (!has_agent || strcmp(e->agent_id, agent_id) != 0)) {
            snprintf(enrolled, sizeof enrolled, ", enrolled as %s", e->agent_id);
        } else if (!e) {
            snprintf(enrolled, sizeof enrolled, ", not enrolled");
        }
        pthread_mutex_unlock(&self->lock);
    }
    if (has_agent && has_key) {
        snprintf(out, cap, "%s (key %s%s)", agent_id, key_z85, enrolled);
    } else if (has_key) {
        snprintf(out, cap, "key %s (agent id not decoded%s)", key_z85, enrolled);
    } else if (has_agent) {
        snprintf(out, cap, "%s (no CURVE key)", agent_id);
    } else {
        snprintf(out, cap, "a peer without a CURVE key whose agent id did not decode");
    }
}
