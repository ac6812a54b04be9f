/* ww_reqlog: see ww_reqlog.h. */
#include "ww_reqlog.h"

#include "ww_le.h"

#include <errno.h>
#include <math.h>
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

/* ---- the READING body, expanded from ww_fields.h ---- */

static unsigned s_reading_bytes(unsigned version)
{
    return version == 1 ? WW_REQLOG_READING_BYTES_V1 : WW_REQLOG_READING_BYTES_V2;
}

/* One field's bytes: an ALWAYS f32 must be finite; an OPTIONAL one may be NaN (not
 * measured) but not infinite; a bool is the byte 0 or 1. False when the value is bad. */
static bool s_get_f32(const uint8_t *p, bool optional, float *out)
{
    float v = ww_get_lef(p);
    *out = v;
    return optional ? !isinf(v) : isfinite(v);
}

static bool s_get_u32(const uint8_t *p, bool optional, uint32_t *out)
{
    (void)optional;
    *out = ww_get_le32(p);
    return true;
}

static bool s_get_bool(const uint8_t *p, bool optional, bool *out)
{
    (void)optional;
    *out = p[0] == 1;
    return p[0] <= 1;
}

#define S_GET_F32 s_get_f32
#define S_GET_U32 s_get_u32
#define S_GET_BOOL s_get_bool
#define S_BAD_F32 "a reading's value is not a finite number"
#define S_BAD_U32 "a reading's count is bad"
#define S_BAD_BOOL "a reading's throttled byte is not 0 or 1, or its padding not zero"
#define S_ABSENT_ALWAYS(x) (x) = 0
#define S_ABSENT_OPTIONAL(x) (x) = NAN
#define S_READ_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)                       \
    if (version >= (rl_ver)) {                                                                     \
        if (!WW_FIELD_CAT(S_GET_, kind)(b + (rl_off), WW_FIELD_IS_OPTIONAL(presence), &r->name)) { \
            *why = WW_FIELD_CAT(S_BAD_, kind);                                                     \
            return false;                                                                          \
        }                                                                                          \
    } else {                                                                                       \
        WW_FIELD_CAT(S_ABSENT_, presence)(r->name);                                                \
    }

/* Which bytes of a version's READING body hold time_ns or a field: the rest is padding,
 * which must be zero. */
static bool s_is_padding(unsigned version, unsigned off)
{
    static const ww_field_t fields[] = WW_READING_FIELD_TABLE;
    static const unsigned size[] = {
        [WW_FIELD_KIND_F32] = 4, [WW_FIELD_KIND_U32] = 4, [WW_FIELD_KIND_BOOL] = 1};
    if (off < 8) {
        return false; /* time_ns */
    }
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (fields[i].rl_ver <= version && off >= fields[i].rl_off &&
            off < fields[i].rl_off + size[fields[i].kind]) {
            return false;
        }
    }
    return true;
}

/* Decodes the fields of a READING body b of this version into *r: a field the version does
 * not carry is absent (NaN). False with *why set when a value or the padding is bad. */
static bool s_reading_get(const uint8_t *b, unsigned version, ww_reading_t *r, const char **why)
{
    WW_READING_FIELDS(S_READ_)
    for (unsigned off = 8; off < s_reading_bytes(version); off++) {
        if (b[off] != 0 && s_is_padding(version, off)) {
            *why = S_BAD_BOOL;
            return false;
        }
    }
    return true;
}

#define S_PUT_F32(p, v) ww_put_lef(p, v)
#define S_PUT_U32(p, v) ww_put_le32(p, v)
#define S_PUT_BOOL(p, v) ((p)[0] = (v) ? 1 : 0)
#define S_WRITE_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)                      \
    if (version >= (rl_ver)) {                                                                     \
        WW_FIELD_CAT(S_PUT_, kind)(b + (rl_off), r->name);                                         \
    }

/* Encodes the fields of *r into the READING body b of this version (padding zero). */
static void s_reading_put(uint8_t *b, unsigned version, const ww_reading_t *r)
{
    memset(b + 8, 0, s_reading_bytes(version) - 8);
    WW_READING_FIELDS(S_WRITE_)
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
    unsigned version = p[4];
    if (version < 1 || version > WW_REQLOG_VERSION) {
        return s_bad(why, "version is neither 1 nor 2");
    }
    if (ww_get_le32(p + 12) != 0) {
        return s_bad(why, "reserved header bytes are not zero");
    }
    m->version = version;
    m->type = p[5];
    unsigned n_models = ww_get_le16(p + 6);
    uint32_t count = ww_get_le32(p + 8);
    if (m->type == WW_REQLOG_READING) {
        if (n_models != 0 || count != 1) {
            return s_bad(why, "a reading has no model table and a count of 1");
        }
        if (len != WW_REQLOG_HEADER + s_reading_bytes(version)) {
            return s_bad(why, version == 1 ? "a version 1 reading is 72 bytes"
                                           : "a version 2 reading is 76 bytes");
        }
        const uint8_t *b = p + WW_REQLOG_HEADER;
        m->time_ns = (int64_t)ww_get_le64(b);
        if (!s_reading_get(b, version, &m->reading, why)) {
            return -EBADMSG;
        }
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

static void s_header(uint8_t *p, unsigned version, unsigned type, unsigned n_models, uint32_t count)
{
    ww_put_le32(p, WW_REQLOG_MAGIC);
    p[4] = (uint8_t)version;
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
    s_header(b->buf, WW_REQLOG_REQUESTS_VERSION, WW_REQLOG_REQUESTS, n_models, 0);
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
    return ww_reqlog_reading_v(buf, WW_REQLOG_VERSION, time_ns, r);
}

size_t ww_reqlog_reading_v(uint8_t *buf, unsigned version, int64_t time_ns, const ww_reading_t *r)
{
    if (version < 1 || version > WW_REQLOG_VERSION) {
        return 0;
    }
    s_header(buf, version, WW_REQLOG_READING, 0, 1);
    uint8_t *b = buf + WW_REQLOG_HEADER;
    ww_put_le64(b, (uint64_t)time_ns);
    s_reading_put(b, version, r);
    return WW_REQLOG_HEADER + s_reading_bytes(version);
}
