/* ww_reqlog_source: see ww_reqlog_source.h. */
#define WW_LOG_MODULE "reqlog"
#include "ww_reqlog_source.h"

#include "ww_log.h"
#include "ww_time.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

typedef struct {
    ww_reqlog_conf_t conf;
    char *path;
    int fd;
    bool bound;   /* the socket file at path is ours (close removes it) */
    uint8_t *buf; /* one datagram (WW_REQLOG_MAX_DGRAM + 1: a longer one shows as too long) */
    /* the datagram being handed out by poll_requests (no sink) */
    ww_reqlog_msg_t msg;
    uint32_t next;
    bool have_msg;
    ww_req_sink_fn sink;
    void *sink_arg;
    /* the newest reading */
    bool have_reading;
    int64_t reading_ns;
    ww_reading_t reading;
    /* models in the order first seen: the agent's model indices */
    unsigned n_models;
    char models[WW_REQLOG_MAX_MODELS][WW_MODEL_NAME_MAX];
    uint8_t map[WW_REQLOG_MAX_MODELS]; /* the datagram's index -> ours (0xff: no room) */
    /* counters, logged at close */
    uint64_t datagrams, records, bad_datagrams, bad_records, readings;
    uint32_t since_sample; /* records taken since the last sample() */
    int64_t bad_logged_ns; /* when bad input was last logged */
    ww_complain_t models_c;
} s_src_t;

/* Bad input is logged with its reason at most every WW_REQLOG_LOG_EVERY_NS, with the
 * running counts (a producer with a bug would otherwise log every datagram). */
#define WW_REQLOG_LOG_EVERY_NS (10 * WW_NS_PER_S)

static void s_log_bad(s_src_t *s, const char *what, size_t bytes, const char *why)
{
    int64_t now = ww_time_mono_ns();
    if (s->bad_logged_ns != 0 && now - s->bad_logged_ns < WW_REQLOG_LOG_EVERY_NS) {
        return;
    }
    s->bad_logged_ns = now;
    WW_WARN("%s: dropped a %s (%zu bytes): %s; %llu bad datagrams and %llu bad records so far",
            s->path, what, bytes, why, (unsigned long long)s->bad_datagrams,
            (unsigned long long)s->bad_records);
}

/* Maps the datagram's model table onto ours, adding names not seen before. */
static void s_map_models(s_src_t *s, const ww_reqlog_msg_t *m)
{
    for (unsigned i = 0; i < m->n_models; i++) {
        unsigned k = 0;
        while (k < s->n_models && (strlen(s->models[k]) != m->model_len[i] ||
                                   memcmp(s->models[k], m->model[i], m->model_len[i]) != 0)) {
            k++;
        }
        if (k == s->n_models) {
            if (k == WW_REQLOG_MAX_MODELS) {
                WW_COMPLAIN(&s->models_c,
                            "%s: more than %d models: records of \"%.*s\" are dropped", s->path,
                            WW_REQLOG_MAX_MODELS, (int)m->model_len[i], m->model[i]);
                s->map[i] = 0xff;
                continue;
            }
            memcpy(s->models[k], m->model[i], m->model_len[i]);
            s->models[k][m->model_len[i]] = '\0';
            s->n_models++;
            WW_INFO("%s: model %u is %s", s->path, k, s->models[k]);
        }
        s->map[i] = (uint8_t)k;
    }
}

/* Record k of the current datagram into *r, in our model indices; false when it is dropped
 * (bad, or of a model past our table), counted. */
static bool s_take(s_src_t *s, uint32_t k, ww_request_t *r)
{
    const char *why = "";
    if (ww_reqlog_record(&s->msg, k, r, &why) < 0) {
        s->bad_records++;
        s_log_bad(s, "record", WW_REQLOG_RECORD, why);
        return false;
    }
    if (s->map[r->model] == 0xff) {
        s->bad_records++; /* s_map_models said why */
        return false;
    }
    r->model = s->map[r->model];
    s->records++;
    s->since_sample++;
    return true;
}

/* Receives one datagram into s->msg. 1: a REQUESTS datagram is ready; 0: nothing waiting;
 * -errno: the socket failed. Readings and bad datagrams are consumed on the way. */
static int s_recv(s_src_t *s)
{
    for (;;) {
        ssize_t n = recv(s->fd, s->buf, WW_REQLOG_MAX_DGRAM + 1, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
        }
        s->datagrams++;
        const char *why = NULL;
        ww_reqlog_msg_t m;
        if (ww_reqlog_parse(
                s->buf, (size_t)n > WW_REQLOG_MAX_DGRAM + 1 ? WW_REQLOG_MAX_DGRAM + 1 : (size_t)n,
                &m, &why) < 0) {
            s->bad_datagrams++;
            s_log_bad(s, "datagram", (size_t)n, why);
            continue;
        }
        if (m.type == WW_REQLOG_READING) {
            if (!s->have_reading || m.time_ns >= s->reading_ns) {
                s->reading = m.reading;
                s->reading_ns = m.time_ns;
                s->have_reading = true;
            }
            s->readings++;
            continue;
        }
        s->msg = m;
        s->next = 0;
        s->have_msg = true;
        s_map_models(s, &m);
        return 1;
    }
}

/* With a sink: hands over everything waiting. */
static int s_drain(s_src_t *s)
{
    for (;;) {
        while (s->have_msg && s->next < s->msg.count) {
            ww_request_t r;
            if (s_take(s, s->next++, &r)) {
                s->sink(s->sink_arg, &r);
            }
        }
        s->have_msg = false;
        int rc = s_recv(s);
        if (rc <= 0) {
            return rc;
        }
    }
}

static int s_ready(void *state)
{
    s_src_t *s = state;
    if (s->sink != NULL) {
        return s_drain(s);
    }
    /* No sink: poll_requests takes the records; take the next datagram (and the readings
     * before it) so the socket's queue moves. */
    int rc = s->have_msg ? 0 : s_recv(s);
    return rc < 0 ? rc : 0;
}

static int s_fd(void *state)
{
    return ((s_src_t *)state)->fd;
}

static int s_bind(s_src_t *s)
{
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    if (strlen(s->path) >= sizeof a.sun_path) {
        WW_ERROR("source.socket %s: longer than %zu bytes", s->path, sizeof a.sun_path - 1);
        return -ENAMETOOLONG;
    }
    strcpy(a.sun_path, s->path);
    s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        return -errno;
    }
    struct stat st;
    if (lstat(s->path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            WW_ERROR("source.socket %s: exists and is not a socket", s->path);
            return -EEXIST;
        }
        /* A socket someone still reads is another agent's: leave it. One nobody reads is
         * what an agent that died left behind. */
        int probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        int live = probe >= 0 && connect(probe, (struct sockaddr *)&a, sizeof a) == 0;
        if (probe >= 0) {
            close(probe);
        }
        if (live) {
            WW_ERROR("source.socket %s: another process is bound to it", s->path);
            return -EADDRINUSE;
        }
        if (unlink(s->path) < 0) {
            return -errno;
        }
        WW_INFO("source.socket %s: removed the stale socket of an earlier run", s->path);
    }
    /* bind() makes the file with the umask's bits; chmod() then sets source.socket_mode
     * (the process-wide umask is left alone: other threads may be creating files). */
    int rc = bind(s->fd, (struct sockaddr *)&a, sizeof a);
    int e = errno;
    if (rc < 0) {
        WW_ERROR("source.socket %s: bind: %s", s->path, strerror(e));
        return -e;
    }
    s->bound = true;
    if (chmod(s->path, s->conf.mode) < 0) {
        e = errno;
        WW_ERROR("source.socket %s: chmod %04o: %s", s->path, s->conf.mode, strerror(e));
        return -e;
    }
    return 0;
}

static void s_close(void **state);

static int s_open(const void *conf, unsigned node_index, int64_t start_ns, void **state)
{
    (void)start_ns;
    const ww_reqlog_conf_t *c = conf;
    *state = NULL;
    if (node_index != 0 || c == NULL || c->path == NULL || !*c->path || c->max_age_ns <= 0) {
        return -EINVAL;
    }
    s_src_t *s = calloc(1, sizeof *s);
    if (!s) {
        return -ENOMEM;
    }
    s->fd = -1;
    s->conf = *c;
    s->path = strdup(c->path);
    s->buf = malloc(WW_REQLOG_MAX_DGRAM + 1);
    if (!s->path || !s->buf) {
        void *v = s;
        s_close(&v);
        return -ENOMEM;
    }
    int rc = s_bind(s);
    if (rc < 0) {
        void *v = s;
        s_close(&v);
        return rc;
    }
    WW_INFO("request log: listening on %s (mode %04o)", s->path, s->conf.mode);
    *state = s;
    return 0;
}

static int s_sample(void *state, int64_t now_ns, ww_reading_t *out)
{
    s_src_t *s = state;
    int rc = s->sink ? s_drain(s) : 0;
    if (rc < 0) {
        return rc;
    }
    if (!s->have_reading || s->reading_ns < now_ns - s->conf.max_age_ns) {
        return -ENODATA; /* the producer is not sending: no reading, not an old one */
    }
    *out = s->reading;
    /* Completions since the last sample, as counted here: the reading's own count covers
     * the producer's interval, which need not line up with the agent's ticks. */
    out->requests_completed = s->since_sample;
    s->since_sample = 0;
    return 0;
}

static int s_poll_requests(void *state, ww_request_t *out, size_t cap)
{
    s_src_t *s = state;
    if (s->sink != NULL) {
        int rc = s_drain(s); /* the records go to the sink (ww_source.h) */
        return rc < 0 ? rc : 0;
    }
    size_t n = 0;
    while (n < cap) {
        if (!s->have_msg || s->next >= s->msg.count) {
            s->have_msg = false;
            int rc = s_recv(s);
            if (rc < 0) {
                return rc;
            }
            if (rc == 0) {
                break;
            }
            continue; /* the new datagram may hold no records */
        }
        if (s_take(s, s->next++, &out[n])) {
            n++;
        }
    }
    return (int)n;
}

static void s_set_sink(void *state, ww_req_sink_fn fn, void *arg)
{
    s_src_t *s = state;
    s->sink = fn;
    s->sink_arg = arg;
}

static const char *s_model_name(void *state, unsigned i)
{
    s_src_t *s = state;
    return i < s->n_models ? s->models[i] : NULL;
}

static void s_close(void **state)
{
    s_src_t *s = state ? *state : NULL;
    if (!s) {
        return;
    }
    if (s->fd >= 0) {
        close(s->fd);
    }
    if (s->bound) {
        unlink(s->path);
        WW_INFO("request log %s: %llu datagrams, %llu readings, %llu records; dropped %llu bad "
                "datagrams and %llu bad records",
                s->path, (unsigned long long)s->datagrams, (unsigned long long)s->readings,
                (unsigned long long)s->records, (unsigned long long)s->bad_datagrams,
                (unsigned long long)s->bad_records);
    }
    free(s->path);
    free(s->buf);
    free(s);
    *state = NULL;
}

const ww_source_t ww_reqlog_source = {
    .name = "reqlog",
    .open = s_open,
    .sample = s_sample,
    .poll_requests = s_poll_requests,
    .set_sink = s_set_sink,
    .fd = s_fd,
    .ready = s_ready,
    .model_name = s_model_name,
    .close = s_close,
};
