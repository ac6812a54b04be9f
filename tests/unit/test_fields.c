/* Unit tests of proto/ww_fields.h, the one list of node-sample reading fields, against what
 * cannot be expanded from it: the NodeSample message of waferwatch.proto (read from the
 * descriptor protoc-c generated: field names, numbers, types and presence) and the
 * node_samples table (the CREATE TABLE node_samples and every ALTER TABLE node_samples
 * ADD/DROP COLUMN of collector/migrations/NNNN_*.sql, parsed here at run time from the source
 * tree, WW_SOURCE_DIR). A field added to one and not the others fails here. Also the list's
 * own consistency: unique names and numbers, the request-log READING layout of each version
 * (no overlap, inside the body), and ww_reading_t's members; and the node_samples COPY row
 * expanded from it (collector/ww_copy.c). */
#include "ww_copy.h"
#include "ww_fields.h"
#include "ww_reading.h"
#include "ww_reqlog.h"
#include "ww_test.h"
#include "ww_wire.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef WW_SOURCE_DIR
#error "WW_SOURCE_DIR (the source tree) is required"
#endif

static const ww_field_t s_fields[] = WW_READING_FIELD_TABLE;
#define N_FIELDS (sizeof s_fields / sizeof s_fields[0])

/* The NodeSample fields that are not readings: the row's key. */
static const struct {
    const char *name;
    unsigned id;
    ProtobufCType type;
    const char *sql;
} s_key[] = {
    {"node_id", 1, PROTOBUF_C_TYPE_STRING, "text"},
    {"time_ns", 2, PROTOBUF_C_TYPE_INT64, NULL},
};

static ProtobufCType s_pb_type(ww_field_kind_t k)
{
    switch (k) {
    case WW_FIELD_KIND_F32:
        return PROTOBUF_C_TYPE_FLOAT;
    case WW_FIELD_KIND_U32:
        return PROTOBUF_C_TYPE_UINT32;
    default:
        return PROTOBUF_C_TYPE_BOOL;
    }
}

static const char *s_sql_type(ww_field_kind_t k)
{
    switch (k) {
    case WW_FIELD_KIND_F32:
        return WW_FIELD_SQL(F32);
    case WW_FIELD_KIND_U32:
        return WW_FIELD_SQL(U32);
    default:
        return WW_FIELD_SQL(BOOL);
    }
}

static unsigned s_rl_size(ww_field_kind_t k)
{
    return k == WW_FIELD_KIND_BOOL ? WW_FIELD_RL_SIZE(BOOL) : WW_FIELD_RL_SIZE(F32);
}

/* ---- the list against itself and ww_reading_t ---- */

#define MEMBER_SIZE_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)                  \
    _Static_assert(sizeof(((ww_reading_t *)0)->name) == WW_FIELD_RL_SIZE(kind),                    \
                   #name ": ww_reading_t member of the kind's size");
WW_READING_FIELDS(MEMBER_SIZE_)

static void test_list_consistent(void **state)
{
    (void)state;
    assert_int_equal(N_FIELDS, WW_READING_NFIELDS);
    /* The COPY column list expanded from it names the same fields in the same order. */
    char cols[1024] = "";
    for (size_t i = 0; i < N_FIELDS; i++) {
        strcat(cols, ", ");
        strcat(cols, s_fields[i].name);
    }
    assert_string_equal(cols, WW_READING_COLUMNS);

    for (unsigned version = 1; version <= WW_REQLOG_VERSION; version++) {
        size_t body = version == 1 ? WW_REQLOG_READING_BYTES_V1 : WW_REQLOG_READING_BYTES_V2;
        unsigned char used[64] = {0};
        assert_true(body <= sizeof used);
        for (size_t b = 0; b < 8; b++) {
            used[b] = 1; /* time_ns */
        }
        for (size_t i = 0; i < N_FIELDS; i++) {
            const ww_field_t *f = &s_fields[i];
            if (f->rl_ver > version) {
                continue;
            }
            for (unsigned b = f->rl_off; b < f->rl_off + s_rl_size(f->kind); b++) {
                if (b >= body || used[b]) {
                    fail_msg("%s: request-log version %u bytes [%u, %u) overlap or leave the "
                             "%zu-byte body",
                             f->name, version, f->rl_off, f->rl_off + s_rl_size(f->kind), body);
                }
                used[b] = 1;
            }
            if (f->kind != WW_FIELD_KIND_BOOL && f->rl_off % 4 != 0) {
                fail_msg("%s: request-log offset %u is not 4-aligned", f->name, f->rl_off);
            }
        }
    }
    for (size_t i = 0; i < N_FIELDS; i++) {
        const ww_field_t *f = &s_fields[i];
        assert_true(f->lo <= f->hi);
        assert_true(f->rl_ver >= 1 && f->rl_ver <= WW_REQLOG_VERSION);
        /* A field added after version 1 cannot be required of a version 1 producer. */
        if (f->rl_ver > 1 && !f->optional) {
            fail_msg("%s: added in request-log version %u, so it must be OPTIONAL", f->name,
                     f->rl_ver);
        }
        /* Absence is NaN in ww_reading_t: only a float can be OPTIONAL. */
        if (f->optional && f->kind != WW_FIELD_KIND_F32) {
            fail_msg("%s: OPTIONAL needs kind F32 (NaN = not measured)", f->name);
        }
        for (size_t k = 0; k < i; k++) {
            assert_true(strcmp(f->name, s_fields[k].name) != 0);
            assert_true(f->pb != s_fields[k].pb);
        }
        for (size_t k = 0; k < sizeof s_key / sizeof s_key[0]; k++) {
            assert_true(strcmp(f->name, s_key[k].name) != 0);
            assert_true(f->pb != s_key[k].id);
        }
    }
}

/* ---- the list against the generated descriptor of NodeSample ---- */

static void test_proto_matches_list(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *d = &waferwatch__v1__node_sample__descriptor;
    for (size_t k = 0; k < sizeof s_key / sizeof s_key[0]; k++) {
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(d, s_key[k].name);
        assert_non_null(f);
        assert_int_equal(f->id, s_key[k].id);
        assert_int_equal(f->type, s_key[k].type);
    }
    for (size_t i = 0; i < N_FIELDS; i++) {
        const ww_field_t *w = &s_fields[i];
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(d, w->name);
        if (f == NULL) {
            fail_msg("%s: in ww_fields.h, not in NodeSample (waferwatch.proto)", w->name);
        }
        if (f->id != w->pb) {
            fail_msg("%s: NodeSample field number %u, ww_fields.h says %u", w->name, f->id, w->pb);
        }
        if (f->type != s_pb_type(w->kind)) {
            fail_msg("%s: NodeSample type %d does not match its kind in ww_fields.h", w->name,
                     (int)f->type);
        }
        /* Presence: implicit (proto3 plain field) or explicit, as a one-field oneof
         * (`oneof <name>_present`, ww_wire.h) or proto3 `optional` (a protoc-c that supports
         * it: label OPTIONAL). */
        bool oneof = (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
        bool explicit_presence = oneof || f->label == PROTOBUF_C_LABEL_OPTIONAL;
        if (explicit_presence != w->optional) {
            fail_msg("%s: NodeSample presence is %s, ww_fields.h says %s", w->name,
                     explicit_presence ? "explicit" : "implicit",
                     w->optional ? "OPTIONAL" : "ALWAYS");
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            fail_msg("%s: repeated in NodeSample", w->name);
        }
        if (oneof) {
            /* The oneof holds this field alone: no other field shares its case member. */
            for (unsigned k = 0; k < d->n_fields; k++) {
                const ProtobufCFieldDescriptor *g = &d->fields[k];
                if (g != f && (g->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                    g->quantifier_offset == f->quantifier_offset) {
                    fail_msg("%s: its oneof also holds %s", w->name, g->name);
                }
            }
        }
    }
    /* Nothing in NodeSample that the list does not name. */
    for (unsigned k = 0; k < d->n_fields; k++) {
        const char *name = d->fields[k].name;
        bool known = false;
        for (size_t i = 0; i < N_FIELDS && !known; i++) {
            known = strcmp(name, s_fields[i].name) == 0;
        }
        for (size_t i = 0; i < sizeof s_key / sizeof s_key[0] && !known; i++) {
            known = strcmp(name, s_key[i].name) == 0;
        }
        if (!known) {
            fail_msg("%s: NodeSample field %u is not in ww_fields.h", name, d->fields[k].id);
        }
    }
    assert_int_equal(d->n_fields, N_FIELDS + sizeof s_key / sizeof s_key[0]);
}

/* ---- the list against the migrations' node_samples ---- */

typedef struct {
    char name[64];
    char type[64];
    bool not_null;
} col_t;

typedef struct {
    col_t c[64];
    size_t n;
} table_t;

static char *s_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* SQL as lower-case words: comments and string literals blanked out, whitespace one space. */
static void s_normalise(char *s)
{
    char *w = s;
    for (char *p = s; *p;) {
        if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n') {
                p++;
            }
        } else if (*p == '\'') {
            p++;
            while (*p && !(*p == '\'' && p[1] != '\'')) {
                p += *p == '\'' ? 2 : 1;
            }
            if (*p) {
                p++;
            }
            *w++ = '\'';
            *w++ = '\'';
        } else if (isspace((unsigned char)*p)) {
            if (w > s && w[-1] != ' ') {
                *w++ = ' ';
            }
            p++;
        } else {
            *w++ = (char)tolower((unsigned char)*p++);
        }
    }
    *w = '\0';
}

/* One column definition "name type [words]" of a CREATE TABLE or ADD COLUMN. */
static void s_add_column(table_t *t, const char *def, size_t len, const char *file)
{
    char buf[256];
    while (len > 0 && *def == ' ') {
        def++, len--;
    }
    assert_true(len < sizeof buf);
    memcpy(buf, def, len);
    buf[len] = '\0';
    static const char *const constraints[] = {"primary ", "unique ",  "constraint ",
                                              "check ",   "foreign ", "exclude "};
    for (size_t i = 0; i < sizeof constraints / sizeof constraints[0]; i++) {
        if (strncmp(buf, constraints[i], strlen(constraints[i])) == 0) {
            return;
        }
    }
    col_t c = {0};
    if (strncmp(buf, "if not exists ", 14) == 0) {
        memmove(buf, buf + 14, strlen(buf + 14) + 1);
    }
    if (sscanf(buf, "%63s %63s", c.name, c.type) != 2) {
        fail_msg("%s: cannot read the column definition \"%s\"", file, buf);
    }
    c.not_null = strstr(buf, " not null") != NULL;
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->c[i].name, c.name) == 0) {
            fail_msg("%s: node_samples.%s added twice", file, c.name);
        }
    }
    assert_true(t->n < sizeof t->c / sizeof t->c[0]);
    t->c[t->n++] = c;
}

static const col_t *s_find(const table_t *t, const char *name);

static void s_drop_column(table_t *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->c[i].name, name) == 0) {
            memmove(&t->c[i], &t->c[i + 1], (t->n - i - 1) * sizeof t->c[0]);
            t->n--;
            return;
        }
    }
}

/* Applies one migration's statements on node_samples to *t. */
static void s_apply(table_t *t, char *sql, const char *file)
{
    static const char create[] = "create table node_samples (";
    char *p = strstr(sql, create);
    if (p) {
        p += sizeof create - 1;
        int depth = 0;
        char *start = p;
        for (; *p; p++) {
            if (*p == '(') {
                depth++;
            } else if (*p == ')' && depth > 0) {
                depth--;
            } else if ((*p == ',' || *p == ')') && depth == 0) {
                s_add_column(t, start, (size_t)(p - start), file);
                start = p + 1;
                if (*p == ')') {
                    break;
                }
            }
        }
    }
    static const char alter[] = "alter table node_samples ";
    static const char alter_if[] = "alter table if exists node_samples ";
    for (char *q = sql; (q = strstr(q, "alter table ")) != NULL; q++) {
        char *a = NULL;
        if (strncmp(q, alter, sizeof alter - 1) == 0) {
            a = q + sizeof alter - 1;
        } else if (strncmp(q, alter_if, sizeof alter_if - 1) == 0) {
            a = q + sizeof alter_if - 1;
        } else {
            continue;
        }
        /* Each action of the statement, up to its ';'. */
        char *end = strchr(a, ';');
        assert_non_null(end);
        while (a < end) {
            char *comma = a;
            int depth = 0;
            while (comma < end && !(*comma == ',' && depth == 0)) {
                depth += *comma == '(' ? 1 : (*comma == ')' ? -1 : 0);
                comma++;
            }
            while (*a == ' ') {
                a++;
            }
            if (strncmp(a, "add column ", 11) == 0) {
                s_add_column(t, a + 11, (size_t)(comma - a - 11), file);
            } else if (strncmp(a, "drop column ", 12) == 0) {
                char name[64];
                const char *n = a + 12;
                if (strncmp(n, "if exists ", 10) == 0) {
                    n += 10;
                }
                assert_int_equal(sscanf(n, "%63[a-z0-9_]", name), 1);
                s_drop_column(t, name);
            } else if (strncmp(a, "alter column ", 13) == 0 &&
                       strstr(a, " drop not null") != NULL && strstr(a, " drop not null") < comma) {
                char name[64];
                assert_int_equal(sscanf(a + 13, "%63[a-z0-9_]", name), 1);
                col_t *c = (col_t *)s_find(t, name);
                if (!c) {
                    fail_msg("%s: DROP NOT NULL on node_samples.%s, no such column", file, name);
                }
                c->not_null = false;
            } else if (strncmp(a, "add ", 4) == 0 || strncmp(a, "rename column", 13) == 0 ||
                       strncmp(a, "alter column", 12) == 0) {
                fail_msg("%s: an ALTER TABLE node_samples action this test does not read: %.40s",
                         file, a);
            }
            a = comma + 1;
        }
    }
}

static int s_is_migration(const struct dirent *e)
{
    const char *n = e->d_name;
    size_t len = strlen(n);
    return len > 9 && isdigit((unsigned char)n[0]) && isdigit((unsigned char)n[1]) &&
           isdigit((unsigned char)n[2]) && isdigit((unsigned char)n[3]) && n[4] == '_' &&
           strcmp(n + len - 4, ".sql") == 0;
}

static void s_load_table(table_t *t)
{
    memset(t, 0, sizeof *t);
    const char *dir = WW_SOURCE_DIR "/collector/migrations";
    struct dirent **list = NULL;
    int n = scandir(dir, &list, s_is_migration, alphasort);
    assert_true(n > 0);
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, list[i]->d_name);
        char *sql = s_read(path);
        s_normalise(sql);
        s_apply(t, sql, list[i]->d_name);
        free(sql);
        free(list[i]);
    }
    free(list);
}

static const col_t *s_find(const table_t *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->c[i].name, name) == 0) {
            return &t->c[i];
        }
    }
    return NULL;
}

static void test_table_matches_list(void **state)
{
    (void)state;
    table_t t;
    s_load_table(&t);
    const col_t *time = s_find(&t, "time");
    assert_non_null(time);
    assert_string_equal(time->type, "timestamptz");
    const col_t *node = s_find(&t, "node_id");
    assert_non_null(node);
    assert_string_equal(node->type, "text");
    for (size_t i = 0; i < N_FIELDS; i++) {
        const ww_field_t *w = &s_fields[i];
        const col_t *c = s_find(&t, w->name);
        if (c == NULL) {
            fail_msg("%s: in ww_fields.h, no column of node_samples in collector/migrations",
                     w->name);
        }
        if (strcmp(c->type, s_sql_type(w->kind)) != 0) {
            fail_msg("node_samples.%s is %s, its kind in ww_fields.h is stored as %s", w->name,
                     c->type, s_sql_type(w->kind));
        }
        /* Every reading may be NULL: an OPTIONAL one when not sent, an ALWAYS one when its
         * not_measured bit is set (migration 0022). */
        if (c->not_null) {
            fail_msg("node_samples.%s is NOT NULL, and a %s reading may be left out", w->name,
                     w->optional ? "OPTIONAL" : "ALWAYS");
        }
    }
    for (size_t k = 0; k < t.n; k++) {
        const char *name = t.c[k].name;
        bool known = strcmp(name, "time") == 0 || strcmp(name, "node_id") == 0;
        for (size_t i = 0; i < N_FIELDS && !known; i++) {
            known = strcmp(name, s_fields[i].name) == 0;
        }
        if (!known) {
            fail_msg("node_samples.%s: a column that ww_fields.h does not list", name);
        }
    }
    assert_int_equal(t.n, N_FIELDS + 2);
}

/* The parser itself, on the shapes the migrations use. */
static void test_table_parser(void **state)
{
    (void)state;
    char sql[] =
        "-- a comment: create table node_samples (x int)\n"
        "CREATE TABLE node_samples (\n  time timestamptz NOT NULL,\n"
        "  node_id text NOT NULL, -- the node\n  a real NOT NULL,\n"
        "  b numeric(10, 2),\n  PRIMARY KEY (node_id, time)\n) PARTITION BY RANGE (time);\n"
        "COMMENT ON COLUMN node_samples.a IS 'alter table node_samples add column z int;';\n"
        "ALTER TABLE other ADD COLUMN q int;\n"
        "ALTER TABLE node_samples ADD COLUMN c boolean, ADD COLUMN IF NOT EXISTS d real;\n"
        "ALTER TABLE node_samples DROP COLUMN b;\n";
    s_normalise(sql);
    table_t t = {0};
    s_apply(&t, sql, "inline");
    assert_int_equal(t.n, 5);
    assert_string_equal(t.c[0].name, "time");
    assert_true(t.c[0].not_null);
    assert_string_equal(t.c[2].name, "a");
    assert_string_equal(t.c[2].type, "real");
    assert_string_equal(t.c[3].name, "c");
    assert_string_equal(t.c[3].type, "boolean");
    assert_false(t.c[3].not_null);
    assert_string_equal(t.c[4].name, "d");
    assert_null(s_find(&t, "b"));
    assert_null(s_find(&t, "z"));
    assert_null(s_find(&t, "q"));
}

/* ---- the COPY row the collector writes ---- */

/* The node_samples COPY names time, node_id and the list; a row has a field per column, an
 * OPTIONAL field the sample lacks is NULL (length -1), one it carries its float4. */
static void test_copy_row_from_list(void **state)
{
    (void)state;
    assert_string_equal(WW_SAMPLE_COLUMNS,
                        "time, node_id, power_w, inlet_c, outlet_c, flow_lpm, wafer_hotspot_c, "
                        "utilization, tokens_per_s, requests_queued, requests_in_flight, "
                        "requests_completed, throttled, throttle_factor, humidity_pct");
    assert_int_equal(WW_SAMPLE_NCOLS, 15);
    ww_node_sample_t s = WAFERWATCH__V1__NODE_SAMPLE__INIT;
    s.node_id = "n1";
    s.time_ns = INT64_C(1795000000) * 1000000000;
    s.throttle_factor = 0.75f;
    ww_copy_t c = {0};
    ww_copy_begin(&c);
    size_t head = c.buf.len;
    ww_copy_sample(&c, &s);
    const uint8_t *row = (const uint8_t *)c.buf.p + head;
    size_t without = c.buf.len - head;
    assert_int_equal(row[0], 0);
    assert_int_equal(row[1], 15);
    /* ... throttle_factor 0.75, then humidity_pct NULL */
    static const uint8_t tail_null[] = {0, 0, 0, 4, 0x3f, 0x40, 0, 0, 0xff, 0xff, 0xff, 0xff};
    assert_memory_equal(row + without - sizeof tail_null, tail_null, sizeof tail_null);
    ww_copy_begin(&c);
    ww_reading_t r;
    ww_wire_sample_to_reading(&s, &r);
    r.humidity_pct = 42.5f; /* 0x422a0000 */
    ww_wire_sample_from_reading(&s, &r);
    ww_copy_sample(&c, &s);
    row = (const uint8_t *)c.buf.p + head;
    assert_int_equal(c.buf.len - head, without + 4);
    static const uint8_t tail_val[] = {0, 0, 0, 4, 0x3f, 0x40, 0, 0, 0, 0, 0, 4, 0x42, 0x2a, 0, 0};
    assert_memory_equal(row + without + 4 - sizeof tail_val, tail_val, sizeof tail_val);
    assert_false(c.range);
    assert_false(c.buf.oom);
    ww_copy_fini(&c);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_list_consistent),    cmocka_unit_test(test_proto_matches_list),
    cmocka_unit_test(test_table_parser),       cmocka_unit_test(test_table_matches_list),
    cmocka_unit_test(test_copy_row_from_list),
};
WW_TEST_MAIN(tests, NULL, NULL)
