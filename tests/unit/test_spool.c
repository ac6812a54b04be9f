/* Unit tests of the on-disk spool: round trips, reopen, acks, damage recovery, bounds,
 * durability modes and a SIGKILL in the middle of appends. Each case uses its own
 * temporary directory. */
#define _GNU_SOURCE /* unshare */
#include "ww_spool.h"
#include "ww_test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HDR 20u /* record header bytes */

/* ---- fixture helpers ---- */

static char *tmpdir_new(void)
{
    char tmpl[] = "/tmp/ww_spool_test_XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    char *s = strdup(d);
    assert_non_null(s);
    return s;
}

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *de;
            while ((de = readdir(d)) != NULL) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
                    continue;
                }
                char sub[4096];
                snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
                rm_rf(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void tmpdir_free(char *dir)
{
    rm_rf(dir);
    free(dir);
}

static ww_spool_conf_t conf_of(const char *dir, uint64_t max_bytes, uint64_t segment_bytes)
{
    ww_spool_conf_t c = {.dir = dir,
                         .max_bytes = max_bytes,
                         .segment_bytes = segment_bytes,
                         .policy = WW_SPOOL_DROP_OLDEST,
                         .fsync = WW_FSYNC_NEVER,
                         .fsync_interval_ns = 0};
    return c;
}

static ww_spool_t *open_ok(const ww_spool_conf_t *c)
{
    int err = 1;
    ww_spool_t *sp = ww_spool_open(c, &err);
    assert_int_equal(err, 0);
    assert_non_null(sp);
    return sp;
}

static ww_spool_state_t state_of(const ww_spool_t *sp)
{
    ww_spool_state_t st;
    ww_spool_state(sp, &st);
    return st;
}

/* The payload of record seq: deterministic bytes, so a reader can check them. */
static void fill(uint8_t *buf, size_t len, uint64_t seq)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)(seq * 31u + i * 7u + (i >> 8));
    }
}

static size_t var_len(uint64_t seq)
{
    return (size_t)(seq % 50u) * 3u; /* 0..147, including empty payloads */
}

/* Appends records next_seq .. next_seq + n - 1 of length lenf(seq). */
static void append_n(ww_spool_t *sp, unsigned n, size_t (*lenf)(uint64_t))
{
    static uint8_t buf[1 << 16];
    for (unsigned i = 0; i < n; i++) {
        uint64_t seq = state_of(sp).next_seq;
        size_t len = lenf(seq);
        fill(buf, len, seq);
        assert_int_equal(ww_spool_append(sp, seq, buf, len, NULL), 0);
        assert_int_equal(state_of(sp).next_seq, seq + 1);
    }
}

static size_t len80(uint64_t seq)
{
    (void)seq;
    return 80; /* 100 bytes on disk with the header */
}

/* Checks one record returned by ww_spool_next: its content is fill(seq). */
static void check_payload(uint64_t seq, void *data, size_t len, size_t (*lenf)(uint64_t))
{
    if (lenf) {
        assert_int_equal(len, lenf(seq));
    }
    uint8_t *ref = malloc(len ? len : 1);
    assert_non_null(ref);
    fill(ref, len, seq);
    assert_memory_equal(data, ref, len);
    free(ref);
    free(data);
}

/* Reads the records after `after`: they must be first..last, in order, intact (lenf ==
 * NULL: any length). */
static void expect_run(ww_spool_t *sp, uint64_t after, uint64_t first, uint64_t last,
                       size_t (*lenf)(uint64_t))
{
    for (uint64_t want = first; want <= last; want++) {
        uint64_t seq = 0;
        void *data = NULL;
        size_t len = 0;
        assert_int_equal(ww_spool_next(sp, after, &seq, &data, &len), 1);
        assert_int_equal(seq, want);
        check_payload(seq, data, len, lenf);
        after = seq;
    }
}

/* As expect_run, and nothing follows. */
static void expect_records(ww_spool_t *sp, uint64_t after, uint64_t first, uint64_t last,
                           size_t (*lenf)(uint64_t))
{
    expect_run(sp, after, first, last, lenf);
    uint64_t seq = 0;
    void *data = (void *)1;
    size_t len = 0;
    assert_int_equal(ww_spool_next(sp, last >= first ? last : after, &seq, &data, &len), 0);
    assert_null(data);
}

static int count_segs(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "seg-", 4) == 0 && strlen(de->d_name) == 28) {
            n++;
        }
    }
    closedir(d);
    return n;
}

/* Path of the segment file with the highest first seq. */
static void last_seg(const char *dir, char *out, size_t cap)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    char best[64] = "";
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "seg-", 4) == 0 && strlen(de->d_name) == 28 &&
            strcmp(de->d_name, best) > 0) {
            memcpy(best, de->d_name, 29); /* 28 characters and the NUL */
        }
    }
    closedir(d);
    assert_true(best[0] != '\0');
    snprintf(out, cap, "%s/%s", dir, best);
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

static void write_file(const char *dir, const char *name, const void *buf, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
}

static void copy_file(const char *from, const char *to)
{
    static uint8_t buf[4096];
    int in = open(from, O_RDONLY);
    assert_true(in >= 0);
    ssize_t n = read(in, buf, sizeof buf);
    assert_true(n > 0);
    close(in);
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(out >= 0);
    assert_int_equal(write(out, buf, (size_t)n), n);
    close(out);
}

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static void random_bytes(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (uint8_t)(seed >> 16);
    }
}

/* ---- tests ---- */

static void test_crc32c_vectors(void **state)
{
    (void)state;
    assert_int_equal(ww_crc32c(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(ww_crc32c(ww_crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);
    assert_int_equal(ww_crc32c(0, "", 0), 0);
    uint8_t zeros[32] = {0};
    assert_int_equal(ww_crc32c(0, zeros, sizeof zeros), 0x8a9136aau);
}

static void test_roundtrip_across_segments(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    ww_spool_conf_t c = conf_of(dir, 1 << 20, 512);
    ww_spool_t *sp = open_ok(&c);
    ww_spool_state_t st = state_of(sp);
    assert_int_equal(st.next_seq, 1);
    assert_int_equal(st.acked, 0);
    assert_int_equal(st.records, 0);
    assert_true(st.epoch != 0);

    append_n(sp, 200, var_len);
    uint64_t bytes = 0;
    for (uint64_t s = 1; s <= 200; s++) {
        bytes += HDR + var_len(s);
    }
    st = state_of(sp);
    assert_int_equal(st.records, 200);
    assert_int_equal(st.bytes, bytes);
    assert_int_equal(st.next_seq, 201);
    assert_true(count_segs(dir) > 10);

    expect_records(sp, 0, 1, 200, var_len);
    expect_records(sp, 137, 138, 200, var_len); /* a jump, not the cached position */
    expect_records(sp, 49, 50, 200, var_len);   /* backwards; seq 50 is empty */
    expect_records(sp, 200, 201, 200, NULL);
    expect_records(sp, 5000, 5001, 5000, NULL);
    ww_spool_close(&sp);
    tmpdir_free(dir);
}

static void test_reopen_continues_epoch(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    ww_spool_conf_t c = conf_of(dir, 1 << 20, 4096);
    ww_spool_t *sp = open_ok(&c);
    append_n(sp, 10, var_len);
    uint64_t epoch = state_of(sp).epoch;
    ww_spool_close(&sp);
    assert_null(sp);
    ww_spool_close(&sp); /* twice */
    ww_spool_close(NULL);
    int segs = count_segs(dir);

    sp = open_ok(&c);
    ww_spool_state_t st = state_of(sp);
    assert_int_equal(st.epoch, epoch);
    assert_int_equal(st.next_seq, 11);
    assert_int_equal(st.records, 10);
    assert_int_equal(st.corrupt_records, 0);
    uint8_t b[4] = {1, 2, 3, 4};
    assert_int_equal(ww_spool_append(sp, 10, b, sizeof b, NULL), -EINVAL);
    assert_int_equal(ww_spool_append(sp, 12, b, sizeof b, NULL), -EINVAL);
    append_n(sp, 1, var_len);
    expect_records(sp, 0, 1, 11, var_len);
    ww_spool_close(&sp);
    assert_int_equal(count_segs(dir), segs); /* the tail was continued */

    sp = open_ok(&c);
    assert_int_equal(state_of(sp).epoch, epoch);
    assert_int_equal(state_of(sp).next_seq, 12);
    ww_spool_close(&sp);
    tmpdir_free(dir);
}

static void test_ack_deletes_segments(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    ww_spool_conf_t c = conf_of(dir, 1 << 20, 300); /* 3 records of 100 bytes a segment */
    ww_spool_t *sp = open_ok(&c);
    append_n(sp, 30, len80);
    assert_int_equal(count_segs(dir), 10);

    assert_int_equal(ww_spool_ack(sp, 14), 0);
    assert_int_equal(count_segs(dir), 6); /* 1-3 .. 10-12 gone; 13-15 holds 15 */
    ww_spool_state_t st = state_of(sp);
    assert_int_equal(st.acked, 14);
    assert_int_equal(st.records, 16);
    assert_int_equal(st.bytes, 18 * 100);
    expect_records(sp, 0, 15, 30, len80);
    expect_records(sp, 3, 15, 30, len80);
    ww_spool_close(&sp);

    sp = open_ok(&c);
    st = state_of(sp);
    assert_int_equal(st.acked, 14);
    assert_int_equal(st.records, 16);
    assert_int_equal(st.next_seq, 31);
    expect_records(sp, 0, 15, 30, len80);

    assert_int_equal(ww_spool_ack(sp, 10), 0); /* below the watermark: no-op */
    assert_int_equal(state_of(sp).acked, 14);
    assert_int_equal(state_of(sp).records, 16);
    assert_int_equal(ww_spool_ack(sp, 1000), 0); /* clamped to next_seq - 1 */
    st = state_of(sp);
    assert_int_equal(st.acked, 30);
    assert_int_equal(st.records, 0);
    expect_records(sp, 0, 31, 30, NULL);
    ww_spool_close(&sp);

    sp = open_ok(&c);
    st = state_of(sp);
    assert_int_equal(st.acked, 30);
    assert_int_equal(st.next_seq, 31);
    assert_int_equal(st.records, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(count_segs(dir), 0);
    append_n(sp, 2, len80);
    expect_records(sp, 0, 31, 32, len80);
    ww_spool_close(&sp);
    tmpdir_free(dir);
}

/* Ten 100-byte records in one segment; cuts the file to `keep` bytes and puts back the
 * meta written before the appends (as if its later writes were lost); reopens. */
static ww_spool_t *torn_fixture(const char *dir, off_t keep)
{
    char meta[4096], saved[4096];
    snprintf(meta, sizeof meta, "%s/meta", dir);
    snprintf(saved, sizeof saved, "%s/meta.saved", dir);
    ww_spool_conf_t c = conf_of(dir, 1 << 20, 1 << 20);
    ww_spool_t *sp = open_ok(&c);
    copy_file(meta, saved); /* next_seq 1 */
    append_n(sp, 10, len80);
    ww_spool_close(&sp);
    char seg[4096];
    last_seg(dir, seg, sizeof seg);
    assert_int_equal(file_size(seg), 1000);
    assert_int_equal(truncate(seg, keep), 0);
    copy_file(saved, meta);
    sp = open_ok(&c);
    assert_int_equal(file_size(seg), 900); /* cut back to the last whole record */
    ww_spool_state_t st = state_of(sp);
    assert_int_equal(st.corrupt_records, 1);
    assert_int_equal(st.records, 9);
    assert_int_equal(st.bytes, 900);
    expect_records(sp, 0, 1, 9, len80);
    return sp;
}

static void torn_continue(const char *dir, ww_spool_t *sp)
{
    uint64_t next = state_of(sp).next_seq;
    append_n(sp, 2, len80);
    uint64_t seq;
    void *data;
    size_t len;
    assert_int_equal(ww_spool_next(sp, 9, &seq, &data, &len), 1);
    assert_int_equal(seq, next);
    free(data);
    ww_spool_close(&sp);
    ww_spool_conf_t c = conf_of(dir, 1 << 20, 1 << 20);
    sp = open_ok(&c);
    assert_int_equal(state_of(sp).corrupt_records, 1); /* persisted, not recounted */
    assert_int_equal(state_of(sp).records, 11);
    expect_run(sp, 0, 1, 9, len80);
    expect_records(sp, 9, next, next + 1, len80); /* after the gap, if any */
    ww_spool_close(&sp);
}

static void test_torn_tail_mid_payload(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    ww_spool_t *sp = torn_fixture(dir, 1000 - 30);
    /* The header of 10 survived: 10 may have been sent, so it is not reused. */
    assert_int_equal(state_of(sp).next_seq, 11);
    torn_continue(dir, sp);
    tmpdir_free(dir);
}

static void test_torn_tail_mid_header(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    ww_spool_t *sp = torn_fixture(dir, 900 + 7);
    /* Nothing of 10 is left and meta is stale: 10 was never reported appended. */
    assert_int_equal(state_of(sp).next_seq, 10);
    torn_continue(dir, sp);
    tmpdir_free(dir);
}

static void test_crc_flip_cut_at_recovery(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    ww_spool_conf_t c = conf_of(dir, 1 << 20, 1 << 20);
    ww_spool_t *sp = open_ok(&c);
    append_n(sp, 10, len80);
    ww_spool_close(&sp);
    char seg[4096];
    last_seg(dir, seg, sizeof seg);
    flip_byte(seg, 4 * 100 + HDR + 33); /* payload of record 5 */

    sp = open_ok(&c);
    ww_spool_state_t st = state_of(sp);
    assert_int_equal(file_size(seg), 400);
    assert_int_equal(st.corrupt_records, 6); /* 5 and the five after it */
    assert_int_equal(st.records, 4);
    assert_int_equal(st.next_seq, 11);
    expect_records(sp, 0, 1, 4, len80);
    append_n(sp, 1, len80);
    expect_records(sp, 4, 11, 11, len80);
    ww_spool_close(&sp);
    tmpdir_free(dir);
}

static void test_crc_flip_skipped_at_read(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    ww_spool_conf_t c = conf_of(dir, 1 << 20, 1 << 20);
    ww_spool_t *sp = open_ok(&c);
    append_n(sp, 10, len80);
    char seg[4096];
    last_seg(dir, seg, sizeof seg);
    flip_byte(seg, 2 * 100 + HDR + 5); /* payload of record 3, behind the spool's back */

    uint64_t seq;
    void *data;
    size_t len;
    assert_int_equal(ww_spool_next(sp, 0, &seq, &data, &len), 1);
    assert_int_equal(seq, 1);
    free(data);
    assert_int_equal(ww_spool_next(sp, 1, &seq, &data, &len), 1);
    assert_int_equal(seq, 2);
    free(data);
    assert_int_equal(ww_spool_next(sp, 2, &seq, &data, &len), 1);
    assert_int_equal(seq, 4);
    free(data);
    assert_int_equal(state_of(sp).corrupt_records, 1);
    assert_int_equal(ww_spool_next(sp, 2, &seq, &data, &len), 1); /* again: counted once */
    assert_int_equal(seq, 4);
    free(data);
    assert_int_equal(state_of(sp).corrupt_records, 1);
    expect_records(sp, 3, 4, 10, len80);
    ww_spool_close(&sp);
    tmpdir_free(dir);
}

static void test_garbage_in_directory(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    uint8_t junk[4096];
    random_bytes(junk, sizeof junk, 7);
    /* No meta yet, but junk that looks like ours. */
    write_file(dir, "notes.txt", "hello", 5);
    write_file(dir, "seg-00000000000000000001.wws", junk, sizeof junk);
    write_file(dir, "seg-00000000000000000005.wws", junk, 0);
    write_file(dir, "seg-99999999999999999999.wws", junk, 10); /* overflows u64 */
    write_file(dir, "seg-abc.wws", junk, 100);
    write_file(dir, "meta.tmp", junk, 13);
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/seg-00000000000000000009.wws", dir);
    assert_int_equal(mkdir(sub, 0700), 0);

    ww_spool_conf_t c = conf_of(dir, 1 << 20, 1000);
    ww_spool_t *sp = open_ok(&c);
    ww_spool_state_t st = state_of(sp);
    assert_int_equal(st.next_seq, 1);
    assert_int_equal(st.records, 0);
    assert_true(st.corrupt_records >= 1); /* the random segment was abandoned */
    append_n(sp, 20, len80);
    expect_records(sp, 0, 1, 20, len80);
    ww_spool_close(&sp);

    /* Now with a valid meta: junk segments after the real ones, and a torn record header
     * whose length points past the end. */
    write_file(dir, "seg-00000000000000000100.wws", junk, 3000);
    write_file(dir, "seg-00000000000000000200.wws", junk, 0);
    /* (seq 43 in a file named 44: not a trace of a real record 44, so no seq is burned) */
    uint8_t hdr[HDR] = {'W', 'W', 'R', '1', 0xff, 0xff, 0xff, 0xff, 43};
    write_file(dir, "seg-00000000000000000044.wws", hdr, sizeof hdr);
    sp = open_ok(&c);
    st = state_of(sp);
    assert_int_equal(st.records, 20);
    assert_int_equal(st.next_seq, 21);
    expect_records(sp, 0, 1, 20, len80);
    append_n(sp, 1, len80);
    expect_records(sp, 20, 21, 21, len80);
    ww_spool_close(&sp);
    struct stat sb;
    char p[4096];
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    assert_int_equal(stat(p, &sb), 0); /* not ours: left alone */
    snprintf(p, sizeof p, "%s/seg-00000000000000000100.wws", dir);
    assert_int_equal(stat(p, &sb), -1);
    snprintf(p, sizeof p, "%s/seg-00000000000000000200.wws", dir);
    assert_int_equal(stat(p, &sb), -1);
    tmpdir_free(dir);
}

static void test_garbage_meta_new_epoch(void **state)
{
    (void)state;
    static const size_t sizes[] = {40, 3, 0};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        char *dir = tmpdir_new();
        ww_spool_conf_t c = conf_of(dir, 1 << 20, 250);
        ww_spool_t *sp = open_ok(&c);
        append_n(sp, 5, len80);
        assert_int_equal(ww_spool_ack(sp, 2), 0); /* segment 1-2 goes */
        uint64_t old = state_of(sp).epoch;
        ww_spool_close(&sp);

        uint8_t junk[40];
        random_bytes(junk, sizeof junk, (unsigned)k + 1);
        write_file(dir, "meta", junk, sizes[k]);
        sp = open_ok(&c);
        ww_spool_state_t st = state_of(sp);
        assert_true(st.epoch != 0 && st.epoch != old);
        assert_int_equal(st.next_seq, 1);
        assert_int_equal(st.acked, 0);
        assert_int_equal(st.records, 0);
        assert_int_equal(st.bytes, 0);
        assert_int_equal(st.corrupt_records, 3); /* 3..5 were on disk */
        assert_int_equal(count_segs(dir), 0);
        expect_records(sp, 0, 1, 0, NULL);
        append_n(sp, 3, len80);
        uint64_t epoch = st.epoch;
        ww_spool_close(&sp);

        sp = open_ok(&c);
        st = state_of(sp);
        assert_int_equal(st.epoch, epoch);
        assert_int_equal(st.corrupt_records, 3);
        expect_records(sp, 0, 1, 3, len80);
        ww_spool_close(&sp);
        tmpdir_free(dir);
    }
}

static void test_drop_oldest_counts_exactly(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    /* Segments of 3 records (300 bytes), room for 10 records. */
    ww_spool_conf_t c = conf_of(dir, 1000, 300);
    ww_spool_t *sp = open_ok(&c);
    append_n(sp, 10, len80);
    assert_int_equal(state_of(sp).bytes, 1000);
    assert_int_equal(state_of(sp).dropped_batches, 0);

    uint8_t buf[80];
    fill(buf, 80, 11);
    uint64_t dropped = 99;
    assert_int_equal(ww_spool_append(sp, 11, buf, 80, &dropped), 0);
    assert_int_equal(dropped, 3); /* segment 1-3 */
    ww_spool_state_t st = state_of(sp);
    assert_int_equal(st.dropped_batches, 3);
    assert_int_equal(st.records, 8);
    assert_int_equal(st.bytes, 800);
    expect_records(sp, 0, 4, 11, len80);

    /* 4-6 is the oldest now; with 4 acked, only 5 and 6 count as dropped. */
    assert_int_equal(ww_spool_ack(sp, 4), 0);
    fill(buf, 80, 12);
    assert_int_equal(ww_spool_append(sp, 12, buf, 80, &dropped), 0);
    assert_int_equal(dropped, 0); /* 900 bytes: fits */
    fill(buf, 80, 13);
    assert_int_equal(ww_spool_append(sp, 13, buf, 80, &dropped), 0);
    assert_int_equal(dropped, 0); /* 1000 */
    fill(buf, 80, 14);
    assert_int_equal(ww_spool_append(sp, 14, buf, 80, &dropped), 0);
    assert_int_equal(dropped, 2);
    st = state_of(sp);
    assert_int_equal(st.dropped_batches, 5);
    assert_int_equal(st.records, 8);
    assert_true(st.bytes <= 1000);
    expect_records(sp, 0, 7, 14, len80);

    /* A long run: dropped + on disk accounts for every unacked record appended. */
    uint64_t total = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t seq = state_of(sp).next_seq;
        fill(buf, 80, seq);
        assert_int_equal(ww_spool_append(sp, seq, buf, 80, &dropped), 0);
        total += dropped;
        assert_true(state_of(sp).bytes <= 1000);
    }
    st = state_of(sp);
    assert_int_equal(st.dropped_batches, 5 + total);
    assert_int_equal(st.records + st.dropped_batches + 1, st.next_seq - 1); /* 4 acked */
    uint64_t first = st.next_seq - st.records;
    expect_records(sp, 0, first, st.next_seq - 1, len80);
    ww_spool_close(&sp);

    sp = open_ok(&c);
    ww_spool_state_t st2 = state_of(sp);
    assert_int_equal(st2.dropped_batches, st.dropped_batches);
    assert_int_equal(st2.records, st.records);
    expect_records(sp, 0, first, st.next_seq - 1, len80);
    ww_spool_close(&sp);

    /* One segment bigger than the bound: the open tail itself goes. */
    ww_spool_conf_t c1 = conf_of(dir, 1000, 1 << 20);
    rm_rf(dir);
    sp = open_ok(&c1);
    append_n(sp, 10, len80);
    fill(buf, 80, 11);
    assert_int_equal(ww_spool_append(sp, 11, buf, 80, &dropped), 0);
    assert_int_equal(dropped, 10);
    assert_int_equal(state_of(sp).records, 1);
    expect_records(sp, 0, 11, 11, len80);
    ww_spool_close(&sp);
    tmpdir_free(dir);
}

static void test_refuse_when_full(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    ww_spool_conf_t c = conf_of(dir, 1000, 300);
    c.policy = WW_SPOOL_REFUSE;
    ww_spool_t *sp = open_ok(&c);
    append_n(sp, 10, len80);
    ww_spool_state_t before = state_of(sp);
    uint8_t buf[80];
    fill(buf, 80, 11);
    uint64_t dropped = 99;
    assert_int_equal(ww_spool_append(sp, 11, buf, 80, &dropped), -ENOSPC);
    assert_int_equal(dropped, 0);
    assert_int_equal(ww_spool_append(sp, 11, buf, 1, NULL), -ENOSPC);
    ww_spool_state_t after = state_of(sp);
    assert_memory_equal(&before, &after, sizeof before);
    expect_records(sp, 0, 1, 10, len80);

    assert_int_equal(ww_spool_ack(sp, 3), 0); /* frees segment 1-3 */
    assert_int_equal(ww_spool_append(sp, 11, buf, 80, NULL), 0);
    expect_records(sp, 0, 4, 11, len80);
    ww_spool_close(&sp);
    tmpdir_free(dir);

    /* A full spool whose only segment is all acked gives its room back. */
    dir = tmpdir_new();
    c = conf_of(dir, 1000, 1 << 20);
    c.policy = WW_SPOOL_REFUSE;
    sp = open_ok(&c);
    append_n(sp, 10, len80);
    assert_int_equal(ww_spool_ack(sp, 10), 0);
    append_n(sp, 10, len80);
    expect_records(sp, 0, 11, 20, len80);
    assert_int_equal(ww_spool_append(sp, 21, buf, 80, NULL), -ENOSPC);
    ww_spool_close(&sp);
    tmpdir_free(dir);
}

/* A wall clock the test moves by hand (ww_spool_io_t.now). */
static int64_t clock_now(void *arg)
{
    return *(const int64_t *)arg;
}

/* Whether ww_spool_get reads record seq back whole (payload fill(seq), length lenf). */
static bool get_ok(ww_spool_t *sp, uint64_t seq, size_t (*lenf)(uint64_t))
{
    void *data = NULL;
    size_t len = 99;
    int rc = ww_spool_get(sp, seq, &data, &len);
    assert_true(rc == 0 || rc == 1);
    if (rc == 0) {
        assert_null(data);
        assert_int_equal(len, 0);
        return false;
    }
    uint8_t want[256];
    assert_int_equal(len, lenf(seq));
    fill(want, len, seq);
    assert_memory_equal(data, want, len);
    free(data);
    return true;
}

/* spool.keep_acked: acked records stay readable with ww_spool_get (not ww_spool_next) for
 * keep_acked_ns after their segment's last append, across a reopen, and then go. */
static void test_keep_acked_for_a_resend(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    int64_t now = 1700000000LL * 1000000000LL;
    ww_spool_io_t io = {.now = clock_now, .arg = &now};
    ww_spool_conf_t c = conf_of(dir, 1 << 20, 300); /* 3 records of 100 bytes a segment */
    c.keep_acked_ns = 60LL * 1000000000LL;
    c.io = &io;
    ww_spool_t *sp = open_ok(&c);
    append_n(sp, 9, len80); /* segments 1-3, 4-6, 7-9, last appended at t0 */
    now += 30LL * 1000000000LL;
    append_n(sp, 6, len80); /* 10-12, 13-15 at t0 + 30 s */
    assert_int_equal(ww_spool_ack(sp, 12), 0);
    ww_spool_state_t st = state_of(sp);
    assert_int_equal(st.acked, 12);
    assert_int_equal(st.records, 3);
    assert_int_equal(st.kept, 12);
    assert_int_equal(st.oldest, 1);
    assert_int_equal(count_segs(dir), 5);
    expect_records(sp, 0, 13, 15, len80); /* the send path never sees kept ones */
    for (uint64_t q = 1; q <= 15; q++) {
        assert_true(get_ok(sp, q, len80));
    }
    assert_false(get_ok(sp, 16, len80)); /* not written yet */
    void *data = NULL;
    size_t len = 0;
    assert_int_equal(ww_spool_get(sp, 0, &data, &len), -EINVAL);

    /* Closed and opened again: the kept segments are found, aged by their files' mtime
     * (real time, long past this test's clock): a restart keeps them only while young. */
    ww_spool_close(&sp);
    int64_t real = (int64_t)time(NULL) * 1000000000LL;
    now = real;
    sp = open_ok(&c);
    st = state_of(sp);
    assert_int_equal(st.kept, 12);
    assert_true(get_ok(sp, 2, len80));

    /* 61 s after the files were written: every all-acked segment goes at the next append. */
    now = real + 61LL * 1000000000LL;
    append_n(sp, 1, len80);
    st = state_of(sp);
    assert_int_equal(st.kept, 0);
    assert_int_equal(st.oldest, 13);
    assert_false(get_ok(sp, 2, len80));
    assert_false(get_ok(sp, 12, len80));
    assert_true(get_ok(sp, 13, len80));
    ww_spool_close(&sp);
    tmpdir_free(dir);

    /* Ages differ between segments: the older goes first. */
    dir = tmpdir_new();
    c.dir = dir;
    now = 1700000000LL * 1000000000LL;
    sp = open_ok(&c);
    append_n(sp, 3, len80); /* 1-3 at t0 */
    now += 40LL * 1000000000LL;
    append_n(sp, 3, len80); /* 4-6 at t0 + 40 s */
    append_n(sp, 1, len80); /* 7 opens the tail */
    assert_int_equal(ww_spool_ack(sp, 6), 0);
    assert_int_equal(state_of(sp).kept, 6);
    now += 25LL * 1000000000LL; /* t0 + 65 s: 1-3 are 65 s old, 4-6 25 s */
    assert_int_equal(ww_spool_ack(sp, 7), 0);
    st = state_of(sp);
    assert_int_equal(st.oldest, 4);
    assert_int_equal(st.kept, 4);
    assert_false(get_ok(sp, 3, len80));
    assert_true(get_ok(sp, 4, len80));
    assert_true(get_ok(sp, 7, len80));
    ww_spool_close(&sp);
    tmpdir_free(dir);

    /* keep_acked 0: acked records go at the ack, as they always did. */
    dir = tmpdir_new();
    c = conf_of(dir, 1 << 20, 300);
    sp = open_ok(&c);
    append_n(sp, 7, len80);
    assert_int_equal(ww_spool_ack(sp, 6), 0);
    assert_int_equal(state_of(sp).kept, 0);
    assert_false(get_ok(sp, 5, len80));
    assert_true(get_ok(sp, 7, len80));
    ww_spool_close(&sp);
    tmpdir_free(dir);
}

/* Kept acked records give their room to unacked ones before any bound applies: under
 * stop_sampling no -ENOSPC while kept ones are left, under drop_oldest nothing unacked is
 * dropped (and nothing is counted) while kept ones are left. */
static void test_keep_acked_yields_to_the_bound(void **state)
{
    (void)state;
    for (int policy = 0; policy < 2; policy++) {
        char *dir = tmpdir_new();
        int64_t now = 1700000000LL * 1000000000LL;
        ww_spool_io_t io = {.now = clock_now, .arg = &now};
        ww_spool_conf_t c = conf_of(dir, 1000, 300); /* 10 records in all */
        c.policy = policy ? WW_SPOOL_REFUSE : WW_SPOOL_DROP_OLDEST;
        c.keep_acked_ns = 3600LL * 1000000000LL;
        c.io = &io;
        ww_spool_t *sp = open_ok(&c);
        append_n(sp, 9, len80);
        assert_int_equal(ww_spool_ack(sp, 9), 0);
        assert_int_equal(state_of(sp).kept, 9);
        append_n(sp, 9, len80); /* 10..18: each kept segment makes room in turn */
        ww_spool_state_t st = state_of(sp);
        assert_int_equal(st.dropped_batches, 0);
        assert_int_equal(st.records, 9);
        assert_true(st.bytes <= 1000);
        assert_int_equal(st.kept, 0); /* 1-9 went, oldest first */
        assert_false(get_ok(sp, 9, len80));
        expect_records(sp, 0, 10, 18, len80);
        uint8_t buf[80];
        fill(buf, 80, 19);
        if (policy) {
            assert_int_equal(ww_spool_append(sp, 19, buf, 80, NULL), 0); /* 10 records */
            fill(buf, 80, 20);
            assert_int_equal(ww_spool_append(sp, 20, buf, 80, NULL), -ENOSPC);
        } else {
            append_n(sp, 2, len80); /* now unacked ones go, counted */
            assert_true(state_of(sp).dropped_batches > 0);
        }
        ww_spool_close(&sp);
        tmpdir_free(dir);
    }
}

static void test_record_too_large(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    for (int p = 0; p < 2; p++) {
        ww_spool_conf_t c = conf_of(dir, 1000, 300);
        c.policy = p ? WW_SPOOL_REFUSE : WW_SPOOL_DROP_OLDEST;
        ww_spool_t *sp = open_ok(&c);
        uint64_t seq = state_of(sp).next_seq;
        uint8_t buf[1000];
        fill(buf, sizeof buf, seq);
        assert_int_equal(ww_spool_append(sp, seq, buf, 1000 - HDR + 1, NULL), -EMSGSIZE);
        assert_int_equal(state_of(sp).next_seq, seq);
        assert_int_equal(state_of(sp).bytes, 0);
        assert_int_equal(ww_spool_append(sp, seq, buf, 1000 - HDR, NULL), 0); /* exactly */
        assert_int_equal(state_of(sp).bytes, 1000);
        assert_int_equal(ww_spool_ack(sp, seq), 0);
        ww_spool_close(&sp);
    }
    tmpdir_free(dir);
}

/* ---- a seam for the system calls: count flushes, play a small filesystem ---- */

typedef struct {
    unsigned fdatasync_seg;   /* fdatasync of segment files */
    unsigned fdatasync_acked; /* fdatasync of the acked file */
    unsigned fdatasync_other;
    unsigned fsyncs;   /* fsync of anything (meta.tmp, the directory, a cut segment) */
    const char *dir;   /* the spool directory whose segment bytes count against fs_bytes */
    uint64_t fs_bytes; /* 0: no limit; else writev to a segment fails with ENOSPC past it */
    int full_errno;    /* ENOSPC or EDQUOT */
    unsigned enospc;   /* writev calls that failed for lack of room */
} s_io_t;

/* Base name of what fd is open on ("" when unknown). */
static const char *fd_name(int fd, char *buf, size_t cap)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buf, cap - 1);
    if (n < 0) {
        buf[0] = '\0';
        return buf;
    }
    buf[n] = '\0';
    const char *slash = strrchr(buf, '/');
    return slash ? slash + 1 : buf;
}

/* Bytes in the segment files of dir. */
static uint64_t seg_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    uint64_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "seg-", 4) == 0) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            n += (uint64_t)file_size(path);
        }
    }
    closedir(d);
    return n;
}

static ssize_t io_writev(void *arg, int fd, const struct iovec *iov, int cnt)
{
    s_io_t *io = arg;
    char buf[4096];
    if (io->fs_bytes == 0 || strncmp(fd_name(fd, buf, sizeof buf), "seg-", 4) != 0) {
        return writev(fd, iov, cnt);
    }
    /* A filesystem of fs_bytes for segments: what fits is written (a short write, as the
     * kernel does), then ENOSPC. */
    uint64_t used = seg_bytes(io->dir);
    uint64_t room = used < io->fs_bytes ? io->fs_bytes - used : 0;
    size_t want = 0;
    for (int i = 0; i < cnt; i++) {
        want += iov[i].iov_len;
    }
    if (room >= want) {
        return writev(fd, iov, cnt);
    }
    if (room == 0) {
        io->enospc++;
        errno = io->full_errno;
        return -1;
    }
    size_t n = iov[0].iov_len < room ? iov[0].iov_len : (size_t)room;
    return write(fd, iov[0].iov_base, n);
}

static int io_fdatasync(void *arg, int fd)
{
    s_io_t *io = arg;
    char buf[4096];
    const char *name = fd_name(fd, buf, sizeof buf);
    if (strncmp(name, "seg-", 4) == 0) {
        io->fdatasync_seg++;
    } else if (strcmp(name, "acked") == 0) {
        io->fdatasync_acked++;
    } else {
        io->fdatasync_other++;
    }
    return fdatasync(fd);
}

static int io_fsync(void *arg, int fd)
{
    s_io_t *io = arg;
    io->fsyncs++;
    return fsync(fd);
}

static void test_fsync_modes(void **state)
{
    (void)state;
    /* The fdatasync calls each mode makes for: 20 appends, ack 5, ww_spool_sync, 5
     * appends, ack 7, close (ww_spool.h says which flush when). Segments never fill
     * here, so no flush comes from closing one. */
    static const struct {
        ww_fsync_t mode;
        int64_t interval_ns;
        unsigned seg, acked;
    } modes[] = {{WW_FSYNC_ALWAYS, 0, 25, 2},
                 {WW_FSYNC_INTERVAL, 0, 25, 2},                     /* always due */
                 {WW_FSYNC_INTERVAL, INT64_C(3600000000000), 2, 2}, /* sync + close */
                 {WW_FSYNC_NEVER, 0, 1, 0}}; /* the explicit ww_spool_sync only */
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        char *dir = tmpdir_new();
        s_io_t cnt = {0};
        ww_spool_io_t io = {
            .writev = io_writev, .fdatasync = io_fdatasync, .fsync = io_fsync, .arg = &cnt};
        ww_spool_conf_t c = conf_of(dir, 1 << 20, 1 << 20);
        c.fsync = modes[m].mode;
        c.fsync_interval_ns = modes[m].interval_ns;
        c.io = &io;
        ww_spool_t *sp = open_ok(&c);
        unsigned fsyncs_at_open = cnt.fsyncs;
        assert_true(fsyncs_at_open >= 1); /* meta is made durable in every mode */
        append_n(sp, 20, var_len);
        assert_int_equal(ww_spool_ack(sp, 5), 0);
        assert_int_equal(ww_spool_sync(sp), 0);
        append_n(sp, 5, var_len);
        assert_int_equal(ww_spool_ack(sp, 7), 0);
        ww_spool_close(&sp);
        print_message("mode %zu: fdatasync seg %u acked %u other %u, fsync %u\n", m,
                      cnt.fdatasync_seg, cnt.fdatasync_acked, cnt.fdatasync_other, cnt.fsyncs);
        assert_int_equal(cnt.fdatasync_seg, modes[m].seg);
        assert_int_equal(cnt.fdatasync_acked, modes[m].acked);
        assert_int_equal(cnt.fdatasync_other, 0);

        c.io = NULL;
        sp = open_ok(&c);
        ww_spool_state_t st = state_of(sp);
        assert_int_equal(st.acked, 7);
        assert_int_equal(st.next_seq, 26);
        assert_int_equal(st.records, 18);
        expect_records(sp, 0, 8, 25, var_len);
        ww_spool_close(&sp);
        tmpdir_free(dir);
    }
}

/* A full filesystem (a write fails with ENOSPC or EDQUOT before max_bytes) under
 * drop_oldest: the oldest segment goes, counted, and the append is retried; reported as a
 * full disk, not as the spool's bound. */
static void test_disk_full_drop_oldest(void **state)
{
    (void)state;
    static const int errs[] = {ENOSPC, EDQUOT};
    for (size_t k = 0; k < 2; k++) {
        char *dir = tmpdir_new();
        s_io_t cnt = {.dir = dir, .fs_bytes = 1000, .full_errno = errs[k]};
        ww_spool_io_t io = {
            .writev = io_writev, .fdatasync = io_fdatasync, .fsync = io_fsync, .arg = &cnt};
        ww_spool_conf_t c = conf_of(dir, 1 << 20, 300); /* 3 records per segment */
        c.io = &io;
        ww_spool_t *sp = open_ok(&c);
        append_n(sp, 10, len80); /* 1000 bytes: the filesystem is full */
        assert_false(state_of(sp).disk_full);
        uint8_t buf[80];
        fill(buf, 80, 11);
        uint64_t dropped = 99;
        assert_int_equal(ww_spool_append(sp, 11, buf, 80, &dropped), 0);
        assert_true(cnt.enospc >= 1);
        assert_int_equal(dropped, 3); /* segment 1-3 */
        ww_spool_state_t st = state_of(sp);
        assert_true(st.disk_full);
        assert_int_equal(st.disk_full_appends, 1);
        assert_int_equal(st.dropped_batches, 3);
        assert_int_equal(st.records, 8);
        assert_int_equal(st.bytes, 800);
        expect_records(sp, 0, 4, 11, len80);
        /* Room again: the next append is a plain one. */
        assert_int_equal(ww_spool_ack(sp, 6), 0);
        fill(buf, 80, 12);
        assert_int_equal(ww_spool_append(sp, 12, buf, 80, &dropped), 0);
        assert_int_equal(dropped, 0);
        assert_false(state_of(sp).disk_full);
        ww_spool_close(&sp);

        /* What is on disk is whole: no torn record from the short write. */
        c.io = NULL;
        sp = open_ok(&c);
        st = state_of(sp);
        assert_int_equal(st.corrupt_records, 0);
        assert_int_equal(st.dropped_batches, 3);
        expect_records(sp, 0, 7, 12, len80);
        ww_spool_close(&sp);
        tmpdir_free(dir);
    }

    /* Nothing to drop (the record does not fit in an empty filesystem): -ENOSPC. */
    char *dir = tmpdir_new();
    s_io_t cnt = {.dir = dir, .fs_bytes = 50, .full_errno = ENOSPC};
    ww_spool_io_t io = {
        .writev = io_writev, .fdatasync = io_fdatasync, .fsync = io_fsync, .arg = &cnt};
    ww_spool_conf_t c = conf_of(dir, 1 << 20, 300);
    c.io = &io;
    ww_spool_t *sp = open_ok(&c);
    uint8_t buf[80];
    fill(buf, 80, 1);
    uint64_t dropped = 99;
    assert_int_equal(ww_spool_append(sp, 1, buf, 80, &dropped), -ENOSPC);
    assert_int_equal(dropped, 0);
    ww_spool_state_t st = state_of(sp);
    assert_true(st.disk_full);
    assert_int_equal(st.next_seq, 1);
    assert_int_equal(st.records, 0);
    assert_int_equal(st.bytes, 0);
    cnt.fs_bytes = 0; /* space freed elsewhere */
    assert_int_equal(ww_spool_append(sp, 1, buf, 80, NULL), 0);
    expect_records(sp, 0, 1, 1, len80);
    ww_spool_close(&sp);
    tmpdir_free(dir);
}

/* A full filesystem under stop_sampling: -ENOSPC with disk_full, nothing changed. */
static void test_disk_full_refuse(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    s_io_t cnt = {.dir = dir, .fs_bytes = 1000, .full_errno = ENOSPC};
    ww_spool_io_t io = {
        .writev = io_writev, .fdatasync = io_fdatasync, .fsync = io_fsync, .arg = &cnt};
    ww_spool_conf_t c = conf_of(dir, 1 << 20, 300);
    c.policy = WW_SPOOL_REFUSE;
    c.io = &io;
    ww_spool_t *sp = open_ok(&c);
    append_n(sp, 10, len80);
    uint8_t buf[80];
    fill(buf, 80, 11);
    assert_int_equal(ww_spool_append(sp, 11, buf, 80, NULL), -ENOSPC);
    ww_spool_state_t st = state_of(sp);
    assert_true(st.disk_full);
    assert_int_equal(st.disk_full_appends, 1);
    assert_int_equal(st.next_seq, 11);
    assert_int_equal(st.records, 10);
    assert_int_equal(st.bytes, 1000);
    assert_int_equal(st.dropped_batches, 0);
    assert_int_equal(seg_bytes(dir), 1000); /* the short write was taken back */
    expect_records(sp, 0, 1, 10, len80);
    /* The spool's own bound is not the disk: refused without disk_full. */
    ww_spool_close(&sp);
    c.max_bytes = 1000;
    c.io = NULL;
    sp = open_ok(&c);
    assert_int_equal(ww_spool_append(sp, 11, buf, 80, NULL), -ENOSPC);
    assert_false(state_of(sp).disk_full);
    /* Acks free segments: room again. */
    assert_int_equal(ww_spool_ack(sp, 3), 0);
    assert_int_equal(ww_spool_append(sp, 11, buf, 80, NULL), 0);
    expect_records(sp, 0, 4, 11, len80);
    ww_spool_close(&sp);
    tmpdir_free(dir);
}

/* A real full filesystem: a tmpfs of 64 KiB mounted in a private mount namespace (needs
 * CAP_SYS_ADMIN, as root in CI; skipped with a message where mounting is not allowed). */
static void test_disk_full_tmpfs(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        mount("wwspooltest", dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0700") < 0) {
        print_message("test_disk_full_tmpfs skipped: cannot mount a tmpfs here: %s\n",
                      strerror(errno));
        tmpdir_free(dir);
        skip();
        return;
    }
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/spool", dir);
    for (int p = 0; p < 2; p++) {
        ww_spool_conf_t c = conf_of(sub, 1 << 20, 8192); /* the bound is far away */
        c.policy = p ? WW_SPOOL_REFUSE : WW_SPOOL_DROP_OLDEST;
        c.fsync = WW_FSYNC_ALWAYS;
        ww_spool_t *sp = open_ok(&c);
        static uint8_t buf[1000];
        int refused = 0;
        for (int i = 0; i < 200 && refused == 0; i++) {
            uint64_t seq = state_of(sp).next_seq;
            fill(buf, sizeof buf, seq);
            int rc = ww_spool_append(sp, seq, buf, sizeof buf, NULL);
            if (rc == -ENOSPC) {
                refused = 1;
            } else {
                assert_int_equal(rc, 0);
            }
        }
        ww_spool_state_t st = state_of(sp);
        print_message("policy %d: disk_full_appends %" PRIu64 ", dropped %" PRIu64
                      ", records %" PRIu64 ", free %" PRIu64 " bytes\n",
                      p, st.disk_full_appends, st.dropped_batches, st.records, st.disk_free);
        assert_true(st.disk_full_appends > 0);
        if (p == 0) {
            assert_int_equal(refused, 0);
            assert_true(st.dropped_batches > 0);
        } else {
            assert_int_equal(refused, 1);
            assert_true(st.disk_full);
            assert_int_equal(st.dropped_batches, 0);
        }
        uint64_t first = st.next_seq - st.records;
        expect_records(sp, 0, first, st.next_seq - 1, NULL);
        ww_spool_close(&sp);
        sp = open_ok(&c);
        assert_int_equal(state_of(sp).corrupt_records, 0);
        expect_records(sp, 0, first, st.next_seq - 1, NULL);
        ww_spool_close(&sp);
        rm_rf(sub);
    }
    umount2(dir, MNT_DETACH);
    tmpdir_free(dir);
}

static void test_stale_meta_never_repeats_seq(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    char meta[4096], saved[4096];
    snprintf(meta, sizeof meta, "%s/meta", dir);
    snprintf(saved, sizeof saved, "%s/meta.saved", dir);
    ww_spool_conf_t c = conf_of(dir, 1 << 20, 300);
    ww_spool_t *sp = open_ok(&c);
    uint64_t epoch = state_of(sp).epoch;
    copy_file(meta, saved); /* next_seq 1 */
    append_n(sp, 10, len80);
    ww_spool_close(&sp);

    copy_file(saved, meta);
    sp = open_ok(&c);
    assert_int_equal(state_of(sp).epoch, epoch);
    assert_int_equal(state_of(sp).next_seq, 11); /* from the records on disk */
    append_n(sp, 5, len80);
    assert_int_equal(ww_spool_ack(sp, 15), 0); /* everything acked: segments go */
    ww_spool_close(&sp);

    copy_file(saved, meta);
    sp = open_ok(&c);
    ww_spool_state_t st = state_of(sp);
    assert_int_equal(count_segs(dir), 0);
    assert_int_equal(st.epoch, epoch);
    assert_int_equal(st.next_seq, 16); /* from the acked watermark */
    append_n(sp, 1, len80);
    expect_records(sp, 0, 16, 16, len80);
    ww_spool_close(&sp);
    tmpdir_free(dir);
}

static size_t crash_len(uint64_t seq)
{
    return (size_t)((seq * 7919u) % 20000u);
}

#define CRASH_MAX_SEQ 65536

/* A child appends in a loop and reports each seq once append returned; it is SIGKILLed
 * at a random point; the parent reopens. Four rounds on the same spool. Every reported
 * record must be readable and intact; only the record in progress at a kill may be lost
 * (or be there). */
static void test_sigkill_mid_append(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    ww_spool_conf_t c = conf_of(dir, UINT64_C(1) << 30, 256 * 1024);
    uint8_t *must = calloc(CRASH_MAX_SEQ, 1); /* 1: reported; 2: in progress at a kill */
    assert_non_null(must);
    uint64_t top = 0;
    srand((unsigned)getpid());
    for (int round = 0; round < 4; round++) {
        c.fsync = round % 2 ? WW_FSYNC_ALWAYS : WW_FSYNC_NEVER;
        int pfd[2];
        assert_int_equal(pipe(pfd), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            int err;
            ww_spool_t *sp = ww_spool_open(&c, &err);
            if (!sp) {
                _exit(2);
            }
            static uint8_t buf[20000];
            for (;;) {
                uint64_t seq = state_of(sp).next_seq;
                fill(buf, crash_len(seq), seq);
                if (ww_spool_append(sp, seq, buf, crash_len(seq), NULL) != 0) {
                    _exit(3);
                }
                if (write(pfd[1], &seq, sizeof seq) != sizeof seq) {
                    _exit(4);
                }
            }
        }
        close(pfd[1]);
        unsigned want = 50 + (unsigned)(rand() % 200);
        uint64_t seq;
        for (unsigned n = 0; n < want; n++) {
            assert_int_equal(read(pfd[0], &seq, sizeof seq), (ssize_t)sizeof seq);
            assert_true(seq > top && seq < CRASH_MAX_SEQ - 1);
            must[seq] = 1;
            top = seq;
        }
        struct timespec pause = {0, (long)(rand() % 2000) * 1000};
        nanosleep(&pause, NULL);
        assert_int_equal(kill(pid, SIGKILL), 0);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        while (read(pfd[0], &seq, sizeof seq) == (ssize_t)sizeof seq) {
            assert_true(seq > top && seq < CRASH_MAX_SEQ - 1);
            must[seq] = 1;
            top = seq;
        }
        close(pfd[0]);
        must[top + 1] = 2;

        ww_spool_t *sp = open_ok(&c);
        ww_spool_state_t st = state_of(sp);
        assert_true(st.corrupt_records <= (uint64_t)round + 1);
        assert_true(st.next_seq >= top + 1);
        assert_true(st.next_seq <= top + 2);
        uint64_t after = 0, got, seen = 0, reported = 0;
        void *data;
        size_t len;
        int rc;
        while ((rc = ww_spool_next(sp, after, &got, &data, &len)) == 1) {
            assert_true(got > after && got < CRASH_MAX_SEQ);
            assert_true(must[got] != 0); /* nothing that was never appended */
            check_payload(got, data, len, crash_len);
            seen += must[got] == 1;
            after = got;
        }
        assert_int_equal(rc, 0);
        for (uint64_t s = 1; s <= top; s++) {
            reported += must[s] == 1;
        }
        assert_int_equal(seen, reported); /* every reported record */
        top = st.next_seq - 1;
        ww_spool_close(&sp);
    }
    free(must);
    tmpdir_free(dir);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    int err = 0;
    assert_null(ww_spool_open(NULL, &err));
    assert_int_equal(err, -EINVAL);
    char *dir = tmpdir_new();
    ww_spool_conf_t c = conf_of(dir, 0, 100);
    err = 0;
    assert_null(ww_spool_open(&c, &err));
    assert_int_equal(err, -EINVAL);

    char file[4096];
    snprintf(file, sizeof file, "%s/plain", dir);
    write_file(dir, "plain", "x", 1);
    c = conf_of(file, 1000, 100); /* a file, not a directory */
    err = 0;
    assert_null(ww_spool_open(&c, &err));
    assert_true(err < 0);

    char nested[4096];
    snprintf(nested, sizeof nested, "%s/a/b/spool", dir);
    c = conf_of(nested, 1000, 100); /* created with its parents */
    ww_spool_t *sp = open_ok(&c);
    struct stat sb;
    assert_int_equal(stat(nested, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    assert_int_equal(ww_spool_append(sp, 1, NULL, 5, NULL), -EINVAL);
    assert_int_equal(ww_spool_append(sp, 1, NULL, 0, NULL), 0); /* empty payload */
    uint64_t seq;
    void *data = NULL;
    size_t len = 9;
    assert_int_equal(ww_spool_next(sp, 0, NULL, &data, &len), -EINVAL);
    assert_int_equal(ww_spool_next(sp, 0, &seq, &data, &len), 1);
    assert_int_equal(seq, 1);
    assert_int_equal(len, 0);
    free(data);
    assert_int_equal(ww_spool_ack(NULL, 1), -EINVAL);
    assert_int_equal(ww_spool_sync(NULL), -EINVAL);
    ww_spool_state_t st;
    ww_spool_state(NULL, &st);
    assert_int_equal(st.next_seq, 0);
    ww_spool_close(&sp);
    tmpdir_free(dir);
}

/* acked is two slots updated in place: a torn newest slot falls back to the previous
 * watermark, a one-slot file of an older version is read, a file of any other size is
 * ignored and rewritten. */
static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static size_t acked_bytes(const char *dir, uint8_t *buf, size_t cap)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/acked", dir);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = pread(fd, buf, cap, 0);
    close(fd);
    assert_true(n >= 0);
    return (size_t)n;
}

static void test_acked_slots(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    ww_spool_conf_t c = conf_of(dir, 1 << 20, 4096);
    c.fsync = WW_FSYNC_ALWAYS;
    ww_spool_t *sp = open_ok(&c);
    uint64_t epoch = state_of(sp).epoch;
    append_n(sp, 12, len80);
    assert_int_equal(ww_spool_ack(sp, 3), 0);
    assert_int_equal(ww_spool_ack(sp, 5), 0);
    assert_int_equal(ww_spool_ack(sp, 7), 0);
    ww_spool_close(&sp);
    uint8_t b[64];
    assert_int_equal(acked_bytes(dir, b, sizeof b), 48);
    sp = open_ok(&c);
    assert_int_equal(state_of(sp).acked, 7);
    ww_spool_close(&sp);

    /* A crash tore the write of 7: the slot holding 5 is used. */
    int newest = b[12] == 7 ? 0 : 1;
    assert_int_equal(b[newest * 24 + 12], 7);
    b[newest * 24 + 13] ^= 0x40;
    write_file(dir, "acked", b, 48);
    sp = open_ok(&c);
    assert_int_equal(state_of(sp).acked, 5);
    assert_int_equal(state_of(sp).records, 7);
    expect_records(sp, 0, 6, 12, len80);
    assert_int_equal(ww_spool_ack(sp, 8), 0); /* overwrites the torn slot, keeps 5 */
    assert_int_equal(acked_bytes(dir, b, sizeof b), 48);
    assert_int_equal(b[(1 - newest) * 24 + 12], 5);
    ww_spool_close(&sp);
    sp = open_ok(&c);
    assert_int_equal(state_of(sp).acked, 8);
    ww_spool_close(&sp);

    /* One slot, as older versions wrote it. */
    memcpy(b, "WWA1", 4);
    put_le(b + 4, epoch, 8);
    put_le(b + 12, 9, 8);
    put_le(b + 20, ww_crc32c(0, b, 20), 4);
    write_file(dir, "acked", b, 24);
    sp = open_ok(&c);
    assert_int_equal(state_of(sp).acked, 9);
    assert_int_equal(ww_spool_ack(sp, 10), 0);
    ww_spool_close(&sp);
    assert_int_equal(acked_bytes(dir, b, sizeof b), 48);
    sp = open_ok(&c);
    assert_int_equal(state_of(sp).acked, 10);
    ww_spool_close(&sp);

    /* Another epoch's watermark is ignored; a file of another size too, then rewritten. */
    put_le(b + 4, epoch + 1, 8);
    put_le(b + 12, 11, 8);
    put_le(b + 20, ww_crc32c(0, b, 20), 4);
    write_file(dir, "acked", b, 24);
    sp = open_ok(&c);
    assert_int_equal(state_of(sp).acked, 0);
    ww_spool_close(&sp);
    random_bytes(b, 30, 5);
    write_file(dir, "acked", b, 30);
    sp = open_ok(&c);
    assert_int_equal(state_of(sp).acked, 0);
    assert_int_equal(state_of(sp).records, 12);
    assert_int_equal(ww_spool_ack(sp, 11), 0);
    ww_spool_close(&sp);
    assert_int_equal(acked_bytes(dir, b, sizeof b), 24);
    sp = open_ok(&c);
    assert_int_equal(state_of(sp).acked, 11);
    assert_int_equal(state_of(sp).records, 1);
    ww_spool_close(&sp);
    tmpdir_free(dir);
}

/* Issue 15 item 1: two agents on one spool continued one epoch and deleted each other's
 * segments. The directory is locked while a spool is open (another open file description
 * conflicts even in this process); the lock names its holder, and dies with it. */
static void test_second_open_is_refused_until_close_or_death(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    ww_spool_conf_t c = conf_of(dir, 100000, 1000);
    ww_spool_t *a = open_ok(&c);
    int err = 0;
    assert_null(ww_spool_open(&c, &err));
    assert_int_equal(err, -EBUSY);

    char path[4096];
    snprintf(path, sizeof path, "%s/lock", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    long pid = 0;
    assert_int_equal(fscanf(f, "%ld", &pid), 1);
    fclose(f);
    assert_int_equal(pid, (long)getpid());

    ww_spool_close(&a);
    ww_spool_t *b = open_ok(&c); /* released at close */
    ww_spool_close(&b);

    /* A holder killed without closing: the kernel releases its lock. */
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        int e = 0;
        ww_spool_t *sp = ww_spool_open(&c, &e);
        char ok = sp ? 'y' : 'n';
        if (write(ready[1], &ok, 1) != 1) {
            _exit(3);
        }
        pause();
        _exit(0);
    }
    close(ready[1]);
    char ok = 0;
    assert_int_equal(read(ready[0], &ok, 1), 1);
    close(ready[0]);
    assert_int_equal(ok, 'y');
    err = 0;
    assert_null(ww_spool_open(&c, &err));
    assert_int_equal(err, -EBUSY);
    kill(child, SIGKILL);
    int st = 0;
    assert_int_equal(waitpid(child, &st, 0), child);
    b = open_ok(&c);
    ww_spool_close(&b);
    ww_spool_close(&b); /* safe twice */
    tmpdir_free(dir);
}

/* Issue 15 item 3: --check-config probes the spool directory without opening it. */
static void test_probe(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    char why[512] = "";
    char nested[4096];
    snprintf(nested, sizeof nested, "%s/x/y", dir);
    assert_int_equal(ww_spool_probe(nested, why, sizeof why), 0);
    struct stat sb;
    assert_int_equal(stat(nested, &sb), -1); /* a check creates nothing */
    ww_spool_conf_t c = conf_of(nested, 100000, 1000);
    ww_spool_t *sp = open_ok(&c);
    ww_spool_close(&sp);
    assert_int_equal(ww_spool_probe(nested, why, sizeof why), 0);
    DIR *d = opendir(dir); /* no probe file left in the ancestor */
    assert_non_null(d);
    struct dirent *de;
    int entries = 0;
    while ((de = readdir(d)) != NULL) {
        entries += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    }
    closedir(d);
    assert_int_equal(entries, 1); /* x */

    /* Under a plain file: cannot be created (root or not). */
    write_file(dir, "plain", "x", 1);
    char bad[4096];
    snprintf(bad, sizeof bad, "%s/plain/spool", dir);
    assert_int_equal(ww_spool_probe(bad, why, sizeof why), -ENOTDIR);
    assert_non_null(strstr(why, bad));
    snprintf(bad, sizeof bad, "%s/plain", dir);
    assert_int_equal(ww_spool_probe(bad, why, sizeof why), -ENOTDIR);
    /* A held spool probes fine: a running agent's config can be checked. */
    sp = open_ok(&c);
    assert_int_equal(ww_spool_probe(nested, why, sizeof why), 0);
    ww_spool_close(&sp);
    tmpdir_free(dir);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_second_open_is_refused_until_close_or_death),
    cmocka_unit_test(test_probe),
    cmocka_unit_test(test_crc32c_vectors),
    cmocka_unit_test(test_roundtrip_across_segments),
    cmocka_unit_test(test_reopen_continues_epoch),
    cmocka_unit_test(test_ack_deletes_segments),
    cmocka_unit_test(test_torn_tail_mid_payload),
    cmocka_unit_test(test_torn_tail_mid_header),
    cmocka_unit_test(test_crc_flip_cut_at_recovery),
    cmocka_unit_test(test_crc_flip_skipped_at_read),
    cmocka_unit_test(test_garbage_in_directory),
    cmocka_unit_test(test_garbage_meta_new_epoch),
    cmocka_unit_test(test_drop_oldest_counts_exactly),
    cmocka_unit_test(test_refuse_when_full),
    cmocka_unit_test(test_keep_acked_for_a_resend),
    cmocka_unit_test(test_keep_acked_yields_to_the_bound),
    cmocka_unit_test(test_record_too_large),
    cmocka_unit_test(test_fsync_modes),
    cmocka_unit_test(test_disk_full_drop_oldest),
    cmocka_unit_test(test_disk_full_refuse),
    cmocka_unit_test(test_disk_full_tmpfs),
    cmocka_unit_test(test_stale_meta_never_repeats_seq),
    cmocka_unit_test(test_sigkill_mid_append),
    cmocka_unit_test(test_bad_arguments),
    cmocka_unit_test(test_acked_slots),
};
WW_TEST_MAIN(tests, NULL, NULL)
