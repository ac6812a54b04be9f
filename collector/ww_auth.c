/* ww_auth: see ww_auth.h. */
#define WW_LOG_MODULE "auth"
#include "ww_auth.h"

#include "ww_allowlist.h"
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

struct ww_auth {
    char *path;
    void *zap;
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;
    pthread_mutex_t lock;
    ww_allowlist_t list;
    ww_auth_stats_t st;
    ww_zmon_limit_t limit; /* refused-connection lines (the ZAP thread's) */
};

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
        const ww_allowlist_entry_t *e = ww_allowlist_find(&self->list, key);
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
    if (!self->path || ww_allowlist_load(allowlist_path, &self->list, why, why_len) < 0) {
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
    ww_allowlist_free(&self->list);
    pthread_mutex_destroy(&self->lock);
    free(self->path);
    free(self);
    *self_p = NULL;
}

int ww_auth_reload(ww_auth_t *self)
{
    ww_allowlist_t fresh;
    char why[512];
    int rc = ww_allowlist_load(self->path, &fresh, why, sizeof why);
    if (rc < 0) {
        WW_ERROR("allowlist not reloaded, the previous one stays in force: %s", why);
        return rc;
    }
    pthread_mutex_lock(&self->lock);
    ww_allowlist_t old = self->list;
    self->list = fresh;
    pthread_mutex_unlock(&self->lock);
    ww_allowlist_free(&old);
    WW_INFO("allowlist %s reloaded: %zu enrolled agent keys", self->path, fresh.n);
    return (int)fresh.n;
}

int ww_auth_check(ww_auth_t *self, const char *key_z85, const char *agent_id, const char *node_id,
                  char *why, size_t why_len)
{
    int rc = 0;
    pthread_mutex_lock(&self->lock);
    const ww_allowlist_entry_t *e = key_z85 ? ww_allowlist_find(&self->list, key_z85) : NULL;
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
        const ww_allowlist_entry_t *e = ww_allowlist_find(&self->list, key_z85);
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
