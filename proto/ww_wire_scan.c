/* ww_wire_scan: see ww_wire_scan.h.
 *
 * The scanner must refuse nothing protobuf-c would decode into a valid message, and call
 * malformed (-EBADMSG) only what protobuf-c itself refuses (the padded field number 0
 * excepted, which ww_wire refused as malformed already). Its reading of tags, varints and
 * length prefixes therefore follows protobuf-c 1.4's protobuf_c_message_unpack() exactly:
 * a tag is at most 5 bytes, a varint at most 10, a length prefix at most 5 bytes and
 * 2^31 - 1, and a known field's wire type must be the one its type is read from (bool
 * reads any; a repeated scalar may also come packed).
 */
#include "ww_wire_scan.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Fields per message the scanner keeps counts for (the largest message has 14). */
#define S_MAX_FIELDS 32
/* Nesting depth; the schema's is 4 (envelope, batch, latency window, histogram). */
#define S_MAX_DEPTH 8

enum { S_VARINT = 0, S_64BIT = 1, S_LEN = 2, S_32BIT = 5 };

/* A field path, rendered only when a message needs it: a chain of (name, index). */
typedef struct s_path {
    const struct s_path *up;
    const char *name;
    size_t index;
    bool indexed;
} s_path_t;

typedef struct {
    const uint8_t *buf; /* the whole message, for offsets in reasons */
    const ww_wire_limits_t *lim;
    ww_wire_scan_head_t *head;
    ww_wire_why_t *why;
} s_ctx_t;

static void s_render(const s_path_t *p, char *out, size_t cap, size_t *at)
{
    if (!p) {
        return;
    }
    s_render(p->up, out, cap, at);
    int n;
    if (p->indexed) {
        n = snprintf(out + *at, cap - *at, "%s%s[%zu]", p->up ? "." : "", p->name, p->index);
    } else {
        n = snprintf(out + *at, cap - *at, "%s%s", p->up ? "." : "", p->name);
    }
    if (n > 0) {
        *at += (size_t)n < cap - *at ? (size_t)n : cap - *at - 1;
    }
}

static int s_fail(s_ctx_t *c, int rc, const s_path_t *p, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes "<path>: <fmt...>" (or "message: ..." without a path) into why->msg. */
static int s_fail(s_ctx_t *c, int rc, const s_path_t *p, const char *fmt, ...)
{
    if (!c->why) {
        return rc;
    }
    char path[160];
    size_t at = 0;
    path[0] = '\0';
    s_render(p, path, sizeof path, &at);
    char *msg = c->why->msg;
    size_t cap = sizeof c->why->msg;
    int n = snprintf(msg, cap, "%s: ", at ? path : "message");
    size_t used = n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + used, cap - used, fmt, ap);
    va_end(ap);
    return rc;
}

static int s_malformed(s_ctx_t *c, const uint8_t *at, const char *what)
{
    return s_fail(c, -EBADMSG, NULL, "bytes that do not decode as an Envelope (%s at byte %zu)",
                  what, (size_t)(at - c->buf));
}

/* A tag as protobuf-c reads it: 0 when malformed (including a one-byte field 0). */
static size_t s_tag(const uint8_t *p, size_t rem, uint32_t *tag, unsigned *wire)
{
    size_t max = rem > 5 ? 5 : rem;
    if ((p[0] & 0xf8) == 0) {
        return 0;
    }
    uint32_t t = (uint32_t)(p[0] & 0x7f) >> 3;
    unsigned shift = 4;
    *wire = p[0] & 7;
    if ((p[0] & 0x80) == 0) {
        *tag = t;
        return 1;
    }
    for (size_t i = 1; i < max; i++) {
        t |= (uint32_t)(p[i] & 0x7f) << shift; /* bits past 32 are lost, as in protobuf-c */
        shift += 7;
        if ((p[i] & 0x80) == 0) {
            *tag = t;
            return i + 1;
        }
    }
    return 0;
}

/* The length of the varint at p (at most 10 bytes), 0 when unterminated. */
static size_t s_varint_len(const uint8_t *p, size_t rem)
{
    size_t max = rem < 10 ? rem : 10;
    for (size_t i = 0; i < max; i++) {
        if ((p[i] & 0x80) == 0) {
            return i + 1;
        }
    }
    return 0;
}

static uint64_t s_varint(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned shift = 7 * (unsigned)i;
        v |= (uint64_t)(p[i] & 0x7f) << shift; /* the 10th byte keeps its lowest bit only */
    }
    return v;
}

/* A length prefix: its bytes in *pref and the payload length in *len; false if malformed. */
static bool s_length(const uint8_t *p, size_t rem, size_t *pref, size_t *len)
{
    size_t max = rem < 5 ? rem : 5;
    size_t v = 0;
    for (size_t i = 0; i < max; i++) {
        v |= (size_t)(p[i] & 0x7f) << (7 * i);
        if ((p[i] & 0x80) == 0) {
            *pref = i + 1;
            *len = v;
            return v <= INT_MAX && v <= rem - (i + 1);
        }
    }
    return false;
}

/* The wire type a non-packed field of this type is read from; -1 for any (bool). */
static int s_wire_of(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_BOOL:
        return -1;
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        return S_32BIT;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return S_64BIT;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
        return S_LEN;
    default:
        return S_VARINT;
    }
}

/* The elements of a packed array of type t in len bytes at p; false when malformed. */
static bool s_packed_count(ProtobufCType t, const uint8_t *p, size_t len, size_t *n)
{
    switch (s_wire_of(t)) {
    case -1:
        *n = len;
        return true;
    case S_32BIT:
        *n = len / 4;
        return len % 4 == 0;
    case S_64BIT:
        *n = len / 8;
        return len % 8 == 0;
    case S_VARINT: {
        size_t k = 0;
        while (len > 0) {
            size_t v = s_varint_len(p, len);
            if (v == 0) {
                return false;
            }
            p += v;
            len -= v;
            k++;
        }
        *n = k;
        return true;
    }
    default:
        return false; /* strings and messages are never packed */
    }
}

/* The limit on the elements of a repeated field; SIZE_MAX when it has none. */
static size_t s_limit(const ww_wire_limits_t *lim, const ProtobufCMessageDescriptor *d,
                      const ProtobufCFieldDescriptor *f)
{
    if (d == &waferwatch__v1__batch__descriptor) {
        switch (f->id) {
        case 1:
            return lim->max_samples;
        case 2:
            return lim->max_windows;
        case 5:
            return lim->max_outages;
        default:
            break;
        }
    } else if (d == &waferwatch__v1__hello__descriptor && f->id == 1) {
        return lim->max_nodes;
    } else if (d == &waferwatch__v1__histogram__descriptor && (f->id == 9 || f->id == 10)) {
        return lim->max_buckets;
    }
    return SIZE_MAX;
}

/* Adds n elements to a repeated field's count and checks its limit. */
static int s_count(s_ctx_t *c, const ProtobufCMessageDescriptor *d,
                   const ProtobufCFieldDescriptor *f, size_t *count, size_t n, const s_path_t *fp)
{
    size_t max = s_limit(c->lim, d, f);
    if (n > max || *count > max - n) {
        return s_fail(c, -EINVAL, fp, "more than the limit %zu", max);
    }
    *count += n;
    return 0;
}

static int s_string(s_ctx_t *c, const uint8_t *s, size_t len, const s_path_t *fp)
{
    if (len > c->lim->max_string) {
        return s_fail(c, -EINVAL, fp, "%zu bytes, longer than the limit %zu", len,
                      c->lim->max_string);
    }
    const uint8_t *nul = memchr(s, 0, len);
    if (nul) {
        return s_fail(c, -EINVAL, fp, "a NUL byte at offset %zu (text may not hold NUL)",
                      (size_t)(nul - s));
    }
    return 0;
}

static int s_message(s_ctx_t *c, const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
                     const s_path_t *path, size_t *counts, int depth);

/* One known field's payload (after its tag): value bytes v[0..n). */
static int s_field(s_ctx_t *c, const ProtobufCMessageDescriptor *d,
                   const ProtobufCFieldDescriptor *f, unsigned wire, const uint8_t *v, size_t n,
                   const s_path_t *path, size_t *counts, size_t (*sub)[S_MAX_FIELDS],
                   bool *sub_used, int depth)
{
    size_t fi = (size_t)(f - d->fields);
    bool top = depth == 0;
    /* The Envelope's own fields are "envelope.x"; its bodies start their own path. */
    s_path_t fp = {top && f->type == PROTOBUF_C_TYPE_MESSAGE ? NULL : path, f->name, 0, false};
    bool repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
    int want = s_wire_of(f->type);
    int rc;
    if (repeated && wire == S_LEN && want != S_LEN) {
        size_t k;
        if (!s_packed_count(f->type, v, n, &k)) {
            return s_malformed(c, v, "a packed array cut mid-element");
        }
        return s_count(c, d, f, &counts[fi], k, &fp);
    }
    if (want >= 0 && (int)wire != want) {
        return s_malformed(c, v, "a field of the wrong wire type");
    }
    if (repeated) {
        fp.index = counts[fi];
        if ((rc = s_count(c, d, f, &counts[fi], 1, &fp)) < 0) {
            return rc;
        }
        fp.indexed = true;
    }
    if (top && f->id == 3 && wire == S_64BIT) {
        uint64_t e = 0;
        for (int i = 7; i >= 0; i--) {
            e = (e << 8) | v[i];
        }
        c->head->epoch = e;
    } else if (top && f->id == 4 && wire == S_VARINT) {
        c->head->seq = s_varint(v, n);
    } else if (top && f->id == 2 && wire == S_LEN) {
        c->head->agent_id = v;
        c->head->agent_id_len = n;
    }
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        return s_string(c, v, n, &fp);
    }
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) {
        return 0;
    }
    const ProtobufCMessageDescriptor *sd = f->descriptor;
    if (sd->n_fields > S_MAX_FIELDS || depth + 1 >= S_MAX_DEPTH) {
        return s_fail(c, -EINVAL, &fp, "a message the scanner cannot hold (%u fields, depth %d)",
                      sd->n_fields, depth + 1);
    }
    /* An optional message given twice is merged by protobuf-c, its repeated fields
     * concatenated: its counts carry over. Repeated elements and oneof members (the last
     * one replaces the others) start from zero. */
    size_t fresh[S_MAX_FIELDS];
    size_t *cc = fresh;
    if (!repeated && !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) {
        cc = sub[fi];
        if (!sub_used[fi]) {
            memset(cc, 0, sd->n_fields * sizeof *cc);
            sub_used[fi] = true;
        }
    } else {
        memset(fresh, 0, sd->n_fields * sizeof *fresh);
    }
    return s_message(c, sd, v, n, &fp, cc, depth + 1);
}

static int s_message(s_ctx_t *c, const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
                     const s_path_t *path, size_t *counts, int depth)
{
    size_t sub[S_MAX_FIELDS][S_MAX_FIELDS];
    bool sub_used[S_MAX_FIELDS] = {false};
    while (len > 0) {
        uint32_t tag;
        unsigned wire;
        size_t t = s_tag(p, len, &tag, &wire);
        if (t == 0) {
            return (p[0] & 0xf8) == 0 ? s_fail(c, -EBADMSG, NULL,
                                               "a field numbered 0 (not valid protobuf) at byte "
                                               "%zu",
                                               (size_t)(p - c->buf))
                                      : s_malformed(c, p, "a malformed tag");
        }
        if (tag == 0) {
            return s_fail(c, -EBADMSG, NULL, "a field numbered 0 (not valid protobuf) at byte %zu",
                          (size_t)(p - c->buf));
        }
        p += t;
        len -= t;
        const uint8_t *v = p; /* the value (after a length prefix) */
        size_t n;             /* its bytes */
        size_t skip;          /* bytes to the next tag */
        switch (wire) {
        case S_VARINT:
            n = skip = s_varint_len(p, len);
            if (n == 0) {
                return s_malformed(c, p, "an unterminated varint");
            }
            break;
        case S_64BIT:
        case S_32BIT:
            n = skip = wire == S_64BIT ? 8 : 4;
            if (len < n) {
                return s_malformed(c, p, "a fixed-size field past the end");
            }
            break;
        case S_LEN: {
            size_t pref;
            if (!s_length(p, len, &pref, &n)) {
                return s_malformed(c, p, "a length past the end");
            }
            v = p + pref;
            skip = pref + n;
            break;
        }
        default:
            return s_malformed(c, p, "a group or an unknown wire type");
        }
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, tag);
        if (f) {
            int rc = s_field(c, d, f, wire, v, n, path, counts, sub, sub_used, depth);
            if (rc < 0) {
                return rc;
            }
        }
        p += skip;
        len -= skip;
    }
    return 0;
}

int ww_wire_scan(const uint8_t *buf, size_t len, const ww_wire_limits_t *lim,
                 ww_wire_scan_head_t *head, ww_wire_why_t *why)
{
    memset(head, 0, sizeof *head);
    s_ctx_t c = {buf, lim, head, why};
    const s_path_t root = {NULL, "envelope", 0, false};
    size_t counts[S_MAX_FIELDS] = {0};
    return s_message(&c, &waferwatch__v1__envelope__descriptor, buf, len, &root, counts, 0);
}
