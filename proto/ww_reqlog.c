/* ww_reqlog: see ww_reqlog.h. */
#include "ww_reqlog.h"

#include "ww_le.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int s_bad(const char **why, const char *what)
{
    *why = what;
    return -EBADMSG;
}

/* A model name: 1..47 printable ASCII characters, no space (it becomes a label). */
static bool s_name_ok(const char *p, size_t len)
{
    if (len == 0 || len >= WW_MODEL_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (p[i] <= ' ' || p[i] > '~') {
            return false;
        }
    }
    return true;
}

static size_t s_align8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

int ww_reqlog_parse(const void *buf, size_t len, ww_reqlog_msg_t *m, const char **why)
{
    const uint8_t *p = buf;
    memset(m, 0, sizeof *m);
    if (len < WW_REQLOG_HEADER) {
        return s_bad(why, "shorter than the 16-byte header");
    }
    if (len > WW_REQLOG_MAX_DGRAM) {
        return s_bad(why, "longer than 16384 bytes");
    }
    if (ww_get_le32(p) != WW_REQLOG_MAGIC) {
        return s_bad(why, "magic is not WRL1");
    }
    if (p[4] != WW_REQLOG_VERSION) {
        return s_bad(why, "version is not 1");
    }
    if (ww_get_le32(p + 12) != 0) {
        return s_bad(why, "reserved header bytes are not zero");
    }
    m->type = p[5];
    unsigned n_models = ww_get_le16(p + 6);
    uint32_t count = ww_get_le32(p + 8);
    if (m->type == WW_REQLOG_READING) {
        if (n_models != 0 || count != 1) {
            return s_bad(why, "a reading has no model table and a count of 1");
        }
        if (len != WW_REQLOG_HEADER + WW_REQLOG_READING_BYTES) {
            return s_bad(why, "a reading is 72 bytes");
        }
        const uint8_t *b = p + WW_REQLOG_HEADER;
        ww_reading_t *r = &m->reading;
        m->time_ns = (int64_t)ww_get_le64(b);
        float *f[] = {&r->power_w,         &r->inlet_c,     &r->outlet_c,     &r->flow_lpm,
                      &r->wafer_hotspot_c, &r->utilization, &r->tokens_per_s, &r->throttle_factor};
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
            *f[i] = ww_get_lef(b + 8 + 4 * i);
            if (!(*f[i] == *f[i]) || *f[i] - *f[i] != 0.0f) {
                return s_bad(why, "a reading's value is not a finite number");
            }
        }
        r->requests_queued = ww_get_le32(b + 40);
        r->requests_in_flight = ww_get_le32(b + 44);
        r->requests_completed = ww_get_le32(b + 48);
        if (b[52] > 1 || b[53] || b[54] || b[55]) {
            return s_bad(why, "a reading's throttled byte is not 0 or 1, or its padding not zero");
        }
        r->throttled = b[52] == 1;
        if (m->time_ns <= 0) {
            return s_bad(why, "a reading's time_ns is not positive");
        }
        return 0;
    }
    if (m->type != WW_REQLOG_REQUESTS) {
        return s_bad(why, "type is neither 1 (reading) nor 2 (requests)");
    }
    if (n_models == 0 || n_models > WW_REQLOG_MAX_MODELS) {
        return s_bad(why, "the model table holds 1 to 8 names");
    }
    size_t off = WW_REQLOG_HEADER;
    for (unsigned i = 0; i < n_models; i++) {
        if (off >= len) {
            return s_bad(why, "the model table runs past the end");
        }
        size_t n = p[off++];
        if (n > len - off || !s_name_ok((const char *)p + off, n)) {
            return s_bad(why, "a model name is not 1-47 printable characters without spaces");
        }
        m->model[i] = (const char *)p + off;
        m->model_len[i] = (uint8_t)n;
        off += n;
    }
    size_t rec = s_align8(off);
    if (rec > len) {
        return s_bad(why, "the model table's padding runs past the end");
    }
    for (size_t i = off; i < rec; i++) {
        if (p[i] != 0) {
            return s_bad(why, "the model table's padding is not zero");
        }
    }
    if ((len - rec) % WW_REQLOG_RECORD != 0 || (len - rec) / WW_REQLOG_RECORD != count) {
        return s_bad(why, "the length is not the header's count of 48-byte records");
    }
    m->n_models = n_models;
    m->count = count;
    m->records = p + rec;
    return 0;
}

int ww_reqlog_record(const ww_reqlog_msg_t *m, uint32_t k, ww_request_t *r, const char **why)
{
    const uint8_t *b = m->records + (size_t)k * WW_REQLOG_RECORD;
    memset(r, 0, sizeof *r);
    r->arrival_ns = (int64_t)ww_get_le64(b);
    r->start_ns = (int64_t)ww_get_le64(b + 8);
    r->first_token_ns = (int64_t)ww_get_le64(b + 16);
    r->done_ns = (int64_t)ww_get_le64(b + 24);
    r->prompt_tokens = ww_get_le32(b + 32);
    r->output_tokens = ww_get_le32(b + 36);
    unsigned model = ww_get_le16(b + 40);
    unsigned status = b[42];
    if (model >= m->n_models) {
        *why = "its model index is past the datagram's model table";
        return -EINVAL;
    }
    if (status > WW_REQ_REJECTED) {
        *why = "its status is not 0-3";
        return -EINVAL;
    }
    if (!(r->arrival_ns > 0 && r->arrival_ns <= r->start_ns && r->start_ns <= r->first_token_ns &&
          r->first_token_ns <= r->done_ns)) {
        *why = "its times are not arrival <= start <= first token <= done, after 1970";
        return -EINVAL;
    }
    for (int i = 43; i < WW_REQLOG_RECORD; i++) {
        if (b[i] != 0) {
            *why = "its padding is not zero";
            return -EINVAL;
        }
    }
    r->model = (uint16_t)model;
    r->status = (ww_req_status_t)status;
    return 0;
}

static void s_header(uint8_t *p, unsigned type, unsigned n_models, uint32_t count)
{
    ww_put_le32(p, WW_REQLOG_MAGIC);
    p[4] = WW_REQLOG_VERSION;
    p[5] = (uint8_t)type;
    ww_put_le16(p + 6, (uint16_t)n_models);
    ww_put_le32(p + 8, count);
    ww_put_le32(p + 12, 0);
}

int ww_reqlog_begin(ww_reqlog_batch_t *b, const char *const *models, unsigned n_models)
{
    if (n_models == 0 || n_models > WW_REQLOG_MAX_MODELS) {
        return -EINVAL;
    }
    size_t off = WW_REQLOG_HEADER;
    for (unsigned i = 0; i < n_models; i++) {
        size_t n = strlen(models[i]);
        if (!s_name_ok(models[i], n)) {
            return -EINVAL;
        }
        b->buf[off++] = (uint8_t)n;
        memcpy(b->buf + off, models[i], n);
        off += n;
    }
    size_t rec = s_align8(off);
    memset(b->buf + off, 0, rec - off);
    s_header(b->buf, WW_REQLOG_REQUESTS, n_models, 0);
    b->n_models = n_models;
    b->records_off = rec;
    b->len = rec;
    b->count = 0;
    return 0;
}

int ww_reqlog_add(ww_reqlog_batch_t *b, const ww_request_t *r)
{
    if (b->len + WW_REQLOG_RECORD > sizeof b->buf) {
        return 0;
    }
    uint8_t *p = b->buf + b->len;
    ww_put_le64(p, (uint64_t)r->arrival_ns);
    ww_put_le64(p + 8, (uint64_t)r->start_ns);
    ww_put_le64(p + 16, (uint64_t)r->first_token_ns);
    ww_put_le64(p + 24, (uint64_t)r->done_ns);
    ww_put_le32(p + 32, r->prompt_tokens);
    ww_put_le32(p + 36, r->output_tokens);
    ww_put_le16(p + 40, r->model);
    p[42] = (uint8_t)r->status;
    memset(p + 43, 0, WW_REQLOG_RECORD - 43);
    b->len += WW_REQLOG_RECORD;
    ww_put_le32(b->buf + 8, ++b->count);
    return 1;
}

size_t ww_reqlog_reading(uint8_t *buf, int64_t time_ns, const ww_reading_t *r)
{
    s_header(buf, WW_REQLOG_READING, 0, 1);
    uint8_t *b = buf + WW_REQLOG_HEADER;
    ww_put_le64(b, (uint64_t)time_ns);
    const float f[] = {r->power_w,         r->inlet_c,     r->outlet_c,     r->flow_lpm,
                       r->wafer_hotspot_c, r->utilization, r->tokens_per_s, r->throttle_factor};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        ww_put_lef(b + 8 + 4 * i, f[i]);
    }
    ww_put_le32(b + 40, r->requests_queued);
    ww_put_le32(b + 44, r->requests_in_flight);
    ww_put_le32(b + 48, r->requests_completed);
    b[52] = r->throttled ? 1 : 0;
    b[53] = b[54] = b[55] = 0;
    return WW_REQLOG_HEADER + WW_REQLOG_READING_BYTES;
}
