/* agent_runlog: see ww_runlog.h. */
#define WW_LOG_MODULE "runlog"
#include "ww_runlog.h"

#include "ww_le.h"
#include "ww_log.h"
#include "ww_time.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SLOT 68u
#define FLAG_STOP 1u

static const uint8_t s_magic[4] = {'W', 'W', 'U', '1'};

struct ww_runlog {
    char *path; /* for logs */
    int fd;
    ww_fsync_t fsync;
    int64_t fsync_interval_ns;
    ww_spool_io_t io;
    int slot;     /* the slot the next record overwrites */
    uint64_t gen; /* generation of the newest record */
    int64_t last_sync_ns;
    bool dir_dirty; /* the file was created: its directory entry is not synced yet */
    int dirfd;
    bool have_prev;
    ww_run_t prev;
    ww_complain_t write_c;
    /* this run */
    bool outage_due; /* the previous run's outage is not spooled yet */
    Waferwatch__V1__Outage outage;
    Waferwatch__V1__Outage *outage_ptr;
    int64_t last_spooled;      /* the last tick spooled by any run; 0: none known */
    uint64_t emitted_at_spool; /* the emitted total at the last append */
};

static void s_encode(uint8_t *b, uint64_t gen, const ww_run_t *r)
{
    memcpy(b, s_magic, 4);
    ww_put_le64(b + 4, gen);
    ww_put_le64(b + 12, r->epoch);
    ww_put_le64(b + 20, r->seq);
    ww_put_le64(b + 28, (uint64_t)r->tick_ns);
    ww_put_le64(b + 36, (uint64_t)r->last_ns);
    ww_put_le64(b + 44, r->open_requests);
    ww_put_le64(b + 52, r->batch_requests);
    ww_put_le32(b + 60, r->stop ? FLAG_STOP : 0u);
    ww_put_le32(b + 64, ww_crc32c(0, b, 64));
}

/* Decodes one slot. Returns false when it is not a valid record. */
static bool s_decode(const uint8_t *b, uint64_t *gen, ww_run_t *r)
{
    if (memcmp(b, s_magic, 4) != 0 || ww_get_le32(b + 64) != ww_crc32c(0, b, 64)) {
        return false;
    }
    *gen = ww_get_le64(b + 4);
    r->epoch = ww_get_le64(b + 12);
    r->seq = ww_get_le64(b + 20);
    r->tick_ns = (int64_t)ww_get_le64(b + 28);
    r->last_ns = (int64_t)ww_get_le64(b + 36);
    r->open_requests = ww_get_le64(b + 44);
    r->batch_requests = ww_get_le64(b + 52);
    r->stop = (ww_get_le32(b + 60) & FLAG_STOP) != 0;
    return true;
}

/* Reads the newest valid slot into prev and picks the slot the next record overwrites. */
static void s_load(ww_runlog_t *self)
{
    uint8_t b[2 * SLOT];
    ssize_t n;
    do {
        n = pread(self->fd, b, sizeof b, 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        return; /* new, empty */
    }
    int valid = 0;
    for (int k = 0; k < 2 && (size_t)n >= (size_t)(k + 1) * SLOT; k++) {
        uint64_t gen;
        ww_run_t r;
        if (!s_decode(b + (size_t)k * SLOT, &gen, &r)) {
            continue;
        }
        valid++;
        if (!self->have_prev || gen > self->gen) {
            self->have_prev = true;
            self->prev = r;
            self->gen = gen;
            self->slot = k ^ 1;
        }
    }
    if (valid == 0) {
        WW_WARN("%s is unreadable: the previous run's outage cannot be reported", self->path);
    }
}

ww_runlog_t *ww_runlog_open(const ww_spool_conf_t *conf, int *err)
{
    int rc = 0;
    ww_runlog_t *self = calloc(1, sizeof *self);
    if (!self) {
        rc = -ENOMEM;
        goto cleanup;
    }
    self->fd = self->dirfd = -1;
    self->fsync = conf->fsync;
    self->fsync_interval_ns = conf->fsync_interval_ns;
    self->io = ww_spool_io_fill(conf->io);
    size_t len = strlen(conf->dir) + sizeof "/run";
    self->path = malloc(len);
    if (!self->path) {
        rc = -ENOMEM;
        goto cleanup;
    }
    snprintf(self->path, len, "%s/run", conf->dir);
    self->dirfd = open(conf->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (self->dirfd < 0) {
        rc = -errno;
        goto cleanup;
    }
    self->fd = openat(self->dirfd, "run", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (self->fd >= 0) {
        self->dir_dirty = true;
    } else if (errno == EEXIST) {
        self->fd = openat(self->dirfd, "run", O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    }
    if (self->fd < 0) {
        rc = errno == ELOOP ? -EBADMSG : -errno;
        goto cleanup;
    }
    struct stat st;
    if (fstat(self->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = -EBADMSG;
        goto cleanup;
    }
    s_load(self);
    self->last_sync_ns = ww_time_mono_ns();
cleanup:
    if (rc != 0) {
        ww_runlog_destroy(&self);
    }
    if (err) {
        *err = rc;
    }
    return self;
}

void ww_runlog_destroy(ww_runlog_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    ww_runlog_t *self = *self_p;
    if (self->fd >= 0) {
        close(self->fd);
    }
    if (self->dirfd >= 0) {
        close(self->dirfd);
    }
    free(self->path);
    free(self);
    *self_p = NULL;
}

bool ww_runlog_prev(const ww_runlog_t *self, ww_run_t *out)
{
    if (!self || !self->have_prev) {
        memset(out, 0, sizeof *out);
        return false;
    }
    *out = self->prev;
    return true;
}

int ww_runlog_record(ww_runlog_t *self, const ww_run_t *run)
{
    if (!self || !run) {
        return -EINVAL;
    }
    uint8_t b[SLOT];
    s_encode(b, self->gen + 1, run);
    ssize_t n;
    do {
        n = pwrite(self->fd, b, sizeof b, (off_t)self->slot * SLOT);
    } while (n < 0 && errno == EINTR);
    int rc = n == (ssize_t)sizeof b ? 0 : (n < 0 ? -errno : -EIO);
    if (rc == 0) {
        /* The other slot still holds the previous record if this one is torn later. */
        self->gen++;
        self->slot ^= 1;
        int64_t now = ww_time_mono_ns();
        bool sync = self->fsync == WW_FSYNC_ALWAYS ||
                    (self->fsync == WW_FSYNC_INTERVAL &&
                     (run->stop || now - self->last_sync_ns >= self->fsync_interval_ns));
        if (sync) {
            if (self->io.fdatasync(self->io.arg, self->fd) < 0) {
                rc = -errno;
            } else if (self->dir_dirty) {
                if (self->io.fsync(self->io.arg, self->dirfd) < 0) {
                    rc = -errno;
                } else {
                    self->dir_dirty = false;
                }
            }
            self->last_sync_ns = now;
        }
    }
    if (rc != 0) {
        WW_COMPLAIN(&self->write_c, "cannot record the run in %s: %s", self->path, strerror(-rc));
    } else {
        WW_RECOVERED(&self->write_c, "recording the run in %s again", self->path);
    }
    return rc;
}

bool ww_runlog_outage(const ww_run_t *prev, uint64_t epoch, uint64_t next_seq,
                      int64_t first_tick_ns, int64_t interval_ns, Waferwatch__V1__Outage *out)
{
    waferwatch__v1__outage__init(out);
    if (!prev) {
        return false;
    }
    /* The recorded tick reached the spool when its seq was used: the spool never reuses a
     * seq in an epoch, so a next seq past it proves the append (or a torn append, which the
     * spool counted as corrupt). */
    bool spooled = prev->stop || (prev->epoch == epoch && next_seq > prev->seq);
    int64_t from = spooled ? prev->tick_ns : prev->last_ns;
    out->from_ns = from > 0 ? from : 0;
    out->to_ns = first_tick_ns;
    out->lost_ticks = 0;
    if (out->from_ns > 0 && interval_ns > 0 && first_tick_ns > out->from_ns) {
        out->lost_ticks = (uint64_t)((first_tick_ns - out->from_ns) / interval_ns) - 1;
    }
    out->lost_requests = prev->open_requests + (spooled ? 0 : prev->batch_requests);
    out->cause = (char *)(prev->stop ? "stop" : "crash");
    return true;
}

bool ww_runlog_begin(ww_runlog_t *self, uint64_t epoch, uint64_t next_seq, int64_t first_tick_ns,
                     int64_t interval_ns, Waferwatch__V1__Outage *out)
{
    self->outage_due = ww_runlog_outage(self->have_prev ? &self->prev : NULL, epoch, next_seq,
                                        first_tick_ns, interval_ns, &self->outage);
    self->outage_ptr = &self->outage;
    self->last_spooled = self->outage_due ? self->outage.from_ns : 0;
    if (self->outage_due) {
        WW_INFO("outage: the previous run ended by %s; from_ns=%lld to_ns=%lld lost_ticks=%llu "
                "lost_requests=%llu (reported with the first batch)",
                self->outage.cause, (long long)self->outage.from_ns, (long long)self->outage.to_ns,
                (unsigned long long)self->outage.lost_ticks,
                (unsigned long long)self->outage.lost_requests);
        if (out) {
            *out = self->outage;
        }
    }
    return self->outage_due;
}

int ww_runlog_tick(ww_runlog_t *self, ww_batch_t *batch, uint64_t epoch, uint64_t seq,
                   int64_t tick_ns, uint64_t open_requests, uint64_t emitted)
{
    /* An outage not spooled yet is carried: its losses ride with the open requests, so a
     * crash before it is spooled does not forget them (last_ns is still its from_ns). */
    ww_run_t run = {.epoch = epoch,
                    .seq = seq,
                    .tick_ns = tick_ns,
                    .last_ns = self->last_spooled,
                    .open_requests =
                        open_requests + (self->outage_due ? self->outage.lost_requests : 0),
                    .batch_requests = emitted - self->emitted_at_spool};
    if (self->outage_due) {
        batch->outages = &self->outage_ptr;
        batch->n_outages = 1;
    }
    return ww_runlog_record(self, &run);
}

void ww_runlog_appended(ww_runlog_t *self, ww_batch_t *batch, bool ok, int64_t tick_ns,
                        uint64_t emitted)
{
    if (ok) {
        self->last_spooled = tick_ns;
        self->emitted_at_spool = emitted;
        self->outage_due = false;
    }
    batch->outages = NULL;
    batch->n_outages = 0;
}

int ww_runlog_stop(ww_runlog_t *self, uint64_t open_requests, uint64_t emitted)
{
    ww_run_t run = {.tick_ns = self->last_spooled,
                    .last_ns = self->last_spooled,
                    .open_requests = open_requests + (emitted - self->emitted_at_spool) +
                                     (self->outage_due ? self->outage.lost_requests : 0),
                    .stop = true};
    return ww_runlog_record(self, &run);
}
