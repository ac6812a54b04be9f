/* Unit tests of the agent's run log (agent/ww_runlog.c): the Outage a restarted agent
 * reports, after a clean stop and after a SIGKILL, through the same modules the agent runs
 * (spool, latency windows, run log). */
#include "ww_latency.h"
#include "ww_runlog.h"
#include "ww_spool.h"
#include "ww_test.h"
#include "ww_time.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define IV (100 * WW_NS_PER_MS)
#define W (10 * WW_NS_PER_S)
#define T0 (INT64_C(1795000000) * WW_NS_PER_S) /* a multiple of W */

static char *s_tmpdir(void)
{
    char tmpl[] = "/tmp/ww_runlog_test_XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    char *s = strdup(d);
    assert_non_null(s);
    return s;
}

/* Removes dir (a strdup'd path) and what is in it, and frees the path. */
static void s_rm_rf(char *dir)
{
    ww_test_rm_dir(dir);
    free(dir);
}

static ww_spool_conf_t s_conf(const char *dir, ww_fsync_t mode)
{
    ww_spool_conf_t c = {.dir = dir,
                         .max_bytes = 1 << 20,
                         .segment_bytes = 1 << 16,
                         .policy = WW_SPOOL_DROP_OLDEST,
                         .fsync = mode,
                         .fsync_interval_ns = 0};
    return c;
}

/* ---- a miniature agent: the modules, driven as agent_main.c drives them ---- */

typedef struct {
    ww_spool_t *spool;
    ww_runlog_t *log;
    ww_latency_t lat;
    ww_batch_t batch;
    uint64_t windows;
    size_t outages_sent; /* batches appended with an outage attached */
} s_agent_t;

static void s_emit(void *arg, unsigned model, int64_t start_ns, int64_t duration_ns,
                   const ww_lat_window_t *w)
{
    (void)model;
    (void)start_ns;
    (void)duration_ns;
    (void)w;
    ((s_agent_t *)arg)->windows++;
}

/* Opens the spool and the run log of dir; returns the previous run's outage in *out. */
static bool s_agent_open(s_agent_t *a, const ww_spool_conf_t *c, int64_t first_tick,
                         Waferwatch__V1__Outage *out)
{
    memset(a, 0, sizeof *a);
    waferwatch__v1__batch__init(&a->batch);
    waferwatch__v1__outage__init(out);
    int err = 1;
    a->spool = ww_spool_open(c, &err);
    if (!a->spool) {
        return false;
    }
    a->log = ww_runlog_open(c, &err);
    if (!a->log || ww_latency_init(&a->lat, 1, W, 6, s_emit, a) < 0) {
        return false;
    }
    ww_latency_set_cover(&a->lat, first_tick);
    ww_spool_state_t st;
    ww_spool_state(a->spool, &st);
    ww_runlog_begin(a->log, st.epoch, st.next_seq, first_tick, IV, out);
    return true;
}

static void s_agent_close(s_agent_t *a)
{
    ww_latency_fini(&a->lat);
    ww_runlog_destroy(&a->log);
    ww_spool_close(&a->spool);
}

/* Records the run and appends a batch for tick t (unless `no_append`: killed between). */
static int s_agent_spool(s_agent_t *a, int64_t t, bool no_append)
{
    ww_spool_state_t st;
    ww_spool_state(a->spool, &st);
    int rc = ww_runlog_tick(a->log, &a->batch, st.epoch, st.next_seq, t,
                            ww_latency_open_requests(&a->lat), a->lat.emitted);
    if (rc != 0 || no_append) {
        return rc;
    }
    uint8_t payload[64];
    memset(payload, (int)(t / IV), sizeof payload);
    rc = ww_spool_append(a->spool, st.next_seq, payload, sizeof payload, NULL);
    if (rc == 0 && a->batch.n_outages > 0) {
        a->outages_sent++;
    }
    ww_runlog_appended(a->log, &a->batch, rc == 0, t, a->lat.emitted);
    return rc;
}

/* One tick at t with `reqs` completions during it: records them, closes the windows that
 * ended, records the run, spools the batch (unless `no_append`). */
static int s_agent_tick(s_agent_t *a, int64_t t, unsigned reqs, bool no_append)
{
    for (unsigned k = 0; k < reqs; k++) {
        ww_request_t r;
        memset(&r, 0, sizeof r);
        r.status = WW_REQ_OK;
        r.done_ns = t - IV + (int64_t)(k + 1) * (IV / (reqs + 1));
        r.arrival_ns = r.done_ns - WW_NS_PER_S;
        r.start_ns = r.first_token_ns = r.arrival_ns + WW_NS_PER_MS;
        r.output_tokens = 3;
        ww_latency_record(&a->lat, &r);
    }
    ww_latency_close(&a->lat, t, false);
    return s_agent_spool(a, t, no_append);
}

/* A clean stop: the open windows go out partial (spooled), then the stop is recorded. */
static void s_agent_stop(s_agent_t *a, int64_t last_tick)
{
    ww_latency_close(&a->lat, last_tick, true);
    assert_int_equal(s_agent_spool(a, last_tick, false), 0);
    assert_int_equal(ww_runlog_stop(a->log, ww_latency_open_requests(&a->lat), a->lat.emitted), 0);
}

static void test_first_run_reports_nothing(void **state)
{
    (void)state;
    char *dir = s_tmpdir();
    ww_spool_conf_t c = s_conf(dir, WW_FSYNC_ALWAYS);
    s_agent_t a;
    Waferwatch__V1__Outage o;
    assert_true(s_agent_open(&a, &c, T0, &o));
    ww_run_t prev;
    assert_false(ww_runlog_prev(a.log, &prev));
    assert_false(ww_runlog_outage(NULL, 1, 1, T0, IV, &o));
    s_agent_close(&a);
    ww_runlog_destroy(&a.log); /* safe twice */
    s_rm_rf(dir);
}

static void test_clean_stop_then_restart(void **state)
{
    (void)state;
    char *dir = s_tmpdir();
    ww_spool_conf_t c = s_conf(dir, WW_FSYNC_ALWAYS);
    s_agent_t a;
    Waferwatch__V1__Outage o;
    assert_true(s_agent_open(&a, &c, T0 + IV, &o));
    for (int i = 1; i <= 30; i++) {
        assert_int_equal(s_agent_tick(&a, T0 + i * IV, 5, false), 0);
    }
    s_agent_stop(&a, T0 + 30 * IV);
    s_agent_close(&a);

    /* Restarted 7 ticks later. */
    assert_true(s_agent_open(&a, &c, T0 + 37 * IV, &o));
    assert_string_equal(o.cause, "stop");
    assert_true(o.from_ns == T0 + 30 * IV);
    assert_true(o.to_ns == T0 + 37 * IV);
    assert_int_equal(o.lost_ticks, 6);
    assert_int_equal(o.lost_requests, 0);
    /* Reported by the first batch of the run, and only by it. */
    assert_int_equal(s_agent_tick(&a, T0 + 37 * IV, 1, false), 0);
    assert_int_equal(s_agent_tick(&a, T0 + 38 * IV, 1, false), 0);
    assert_int_equal(a.outages_sent, 1);
    assert_int_equal(a.batch.n_outages, 0);
    s_agent_close(&a);
    s_rm_rf(dir);
}

/* The child: a run that spools `ticks` ticks of 7 requests each (windows of 10 s close
 * every 100 ticks), then, with `torn`, records tick ticks + 1 without appending it (killed
 * between the two), then tells the parent and waits for the SIGKILL. */
static void s_child(const char *dir, int ticks, bool torn, int wfd)
{
    ww_spool_conf_t c = s_conf(dir, WW_FSYNC_NEVER);
    s_agent_t a;
    Waferwatch__V1__Outage o;
    if (!s_agent_open(&a, &c, T0 + IV, &o)) {
        _exit(2);
    }
    for (int i = 1; i <= ticks; i++) {
        if (s_agent_tick(&a, T0 + i * IV, 7, false) != 0) {
            _exit(3);
        }
    }
    if (torn && s_agent_tick(&a, T0 + (ticks + 1) * IV, 7, true) != 0) {
        _exit(4);
    }
    char ok = 1;
    if (write(wfd, &ok, 1) != 1) {
        _exit(5);
    }
    for (;;) {
        pause();
    }
}

static void s_kill_and_check(int ticks, bool torn)
{
    char *dir = s_tmpdir();
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        s_child(dir, ticks, torn, fds[1]);
    }
    close(fds[1]);
    char ok = 0;
    assert_int_equal(read(fds[0], &ok, 1), 1);
    close(fds[0]);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status));

    ww_spool_conf_t c = s_conf(dir, WW_FSYNC_NEVER);
    s_agent_t a;
    Waferwatch__V1__Outage o;
    int64_t first = T0 + (ticks + 10) * IV;
    assert_true(s_agent_open(&a, &c, first, &o));
    /* 7 requests per tick; windows close at every 100th tick. Spooled: ticks 1..ticks. */
    uint64_t open_after = (uint64_t)(ticks % 100) * 7; /* in the window open after the last */
    print_message("killed after %d ticks%s: outage %s from %lld to %lld, %llu lost ticks, "
                  "%llu lost requests\n",
                  ticks, torn ? " and a recorded, unspooled one" : "", o.cause,
                  (long long)(o.from_ns - T0), (long long)(o.to_ns - T0),
                  (unsigned long long)o.lost_ticks, (unsigned long long)o.lost_requests);
    assert_string_equal(o.cause, "crash");
    assert_true(o.from_ns == T0 + ticks * IV);
    assert_true(o.to_ns == first);
    assert_int_equal(o.lost_ticks, 9);
    if (!torn) {
        assert_int_equal(o.lost_requests, open_after);
    } else {
        /* The unspooled tick's 7 requests are lost too, whichever side of a window end
         * they fell (open after it, or in its batch). */
        assert_int_equal(o.lost_requests, open_after + 7);
    }
    s_agent_close(&a);
    s_rm_rf(dir);
}

static void test_sigkill_then_restart_reports_a_crash(void **state)
{
    (void)state;
    s_kill_and_check(42, false);  /* mid-window */
    s_kill_and_check(100, false); /* the window just closed: nothing open */
    s_kill_and_check(42, true);   /* between the record and the append */
    s_kill_and_check(99, true);   /* the unspooled tick closes a window into its batch */
}

/* An outage that was never spooled (the next run crashed before its first append) is
 * carried: the run after reports from the last tick any run spooled, with its losses. */
static void test_unsent_outage_is_carried(void **state)
{
    (void)state;
    char *dir = s_tmpdir();
    ww_spool_conf_t c = s_conf(dir, WW_FSYNC_ALWAYS);
    s_agent_t a;
    Waferwatch__V1__Outage o;
    assert_true(s_agent_open(&a, &c, T0 + IV, &o));
    for (int i = 1; i <= 20; i++) {
        assert_int_equal(s_agent_tick(&a, T0 + i * IV, 3, false), 0);
    }
    s_agent_close(&a); /* a crash: no stop recorded; 60 requests open */

    /* Run 2: its first tick is recorded, then it dies before the append. Its outage
     * (60 lost) rides in the record's open requests. */
    assert_true(s_agent_open(&a, &c, T0 + 30 * IV, &o));
    assert_int_equal(o.lost_requests, 60);
    assert_int_equal(s_agent_tick(&a, T0 + 30 * IV, 0, true), 0);
    assert_int_equal(a.batch.n_outages, 1); /* attached to the batch being appended */
    s_agent_close(&a);

    assert_true(s_agent_open(&a, &c, T0 + 50 * IV, &o));
    assert_string_equal(o.cause, "crash");
    assert_true(o.from_ns == T0 + 20 * IV);
    assert_int_equal(o.lost_ticks, 29);
    assert_int_equal(o.lost_requests, 60);
    s_agent_close(&a);
    s_rm_rf(dir);
}

/* A torn slot leaves the previous record; garbage makes the previous run unknown, not an
 * error. */
static void test_torn_or_garbage_file(void **state)
{
    (void)state;
    char *dir = s_tmpdir();
    ww_spool_conf_t c = s_conf(dir, WW_FSYNC_ALWAYS);
    int err = 1;
    ww_runlog_t *log = ww_runlog_open(&c, &err);
    assert_non_null(log);
    ww_run_t r1 = {.epoch = 9, .seq = 3, .tick_ns = T0, .last_ns = T0 - IV, .open_requests = 4};
    ww_run_t r2 = r1;
    r2.seq = 4;
    r2.tick_ns = T0 + IV;
    assert_int_equal(ww_runlog_record(log, &r1), 0);
    assert_int_equal(ww_runlog_record(log, &r2), 0);
    ww_runlog_destroy(&log);
    char path[512];
    snprintf(path, sizeof path, "%s/run", dir);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 68 + 30, SEEK_SET); /* r2 went to slot 1 */
    fputc(0x55, f);
    fclose(f);
    log = ww_runlog_open(&c, &err);
    ww_run_t prev;
    assert_true(ww_runlog_prev(log, &prev));
    assert_int_equal(prev.seq, 3);
    ww_runlog_destroy(&log);
    f = fopen(path, "wb");
    assert_non_null(f);
    fputs("garbage", f);
    fclose(f);
    log = ww_runlog_open(&c, &err);
    assert_non_null(log);
    assert_false(ww_runlog_prev(log, &prev));
    ww_runlog_destroy(&log);
    s_rm_rf(dir);
}

/* The price of the per-tick record (printed, not asserted: no timing in tests). */
static void test_record_cost(void **state)
{
    (void)state;
    static const ww_fsync_t modes[] = {WW_FSYNC_NEVER, WW_FSYNC_ALWAYS};
    for (int m = 0; m < 2; m++) {
        char *dir = s_tmpdir();
        ww_spool_conf_t c = s_conf(dir, modes[m]);
        int err = 1;
        ww_runlog_t *log = ww_runlog_open(&c, &err);
        assert_non_null(log);
        enum { N = 2000 };
        int64_t t0 = ww_time_mono_ns();
        for (int i = 0; i < N; i++) {
            ww_run_t r = {.epoch = 1, .seq = (uint64_t)i + 1, .tick_ns = T0 + i * IV};
            assert_int_equal(ww_runlog_record(log, &r), 0);
        }
        int64_t dt = ww_time_mono_ns() - t0;
        print_message("run record, fsync %s: %.2f us per tick (%d ticks)\n", m ? "always" : "never",
                      (double)dt / N / 1e3, N);
        ww_runlog_destroy(&log);
        s_rm_rf(dir);
    }
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_first_run_reports_nothing),
    cmocka_unit_test(test_clean_stop_then_restart),
    cmocka_unit_test(test_sigkill_then_restart_reports_a_crash),
    cmocka_unit_test(test_unsent_outage_is_carried),
    cmocka_unit_test(test_torn_or_garbage_file),
    cmocka_unit_test(test_record_cost),
};
WW_TEST_MAIN(tests, NULL, NULL)
