/* ww_spool: see ww_spool.h.
 *
 * On-disk encoding. Every integer is fixed-width LITTLE-ENDIAN, whatever the host.
 *   record (20-byte header, then the payload):
 *     0  u32 magic   the bytes 'W' 'W' 'R' '1' in that order (0x31525757 read as LE u32)
 *     4  u32 len     payload length
 *     8  u64 seq
 *     16 u32 crc     CRC-32C of the 8 seq bytes as stored, then the payload
 *     20 payload
 *   meta (40 bytes): "WWM1" | u64 epoch | u64 next_seq | u64 dropped_batches
 *                    | u64 corrupt_records | u32 CRC-32C of the 36 bytes before it
 *   acked (two 24-byte slots): "WWA1" | u64 epoch | u64 acked | u32 CRC-32C of the 20 bytes
 *                    before it (the epoch ties the watermark to its stream: one of another
 *                    epoch is ignored). A file of one slot (older versions) is read too.
 * meta is replaced atomically: write meta.tmp, fsync it, rename over meta, fsync the
 * directory (it changes rarely: at open and when a loss counter moves). acked changes on
 * every ack, so it is updated in place instead, without creating, renaming or syncing
 * directory entries: each write overwrites the slot that does not hold the newest
 * watermark, so a write torn by a crash leaves the other slot, the previous watermark,
 * intact (and a stale watermark only causes resends). The newest valid slot of this epoch
 * wins at open. acked is synced (fdatasync: once both slots exist only their bytes change)
 * on every ack under the ALWAYS policy, by the next sync under INTERVAL, never under NEVER;
 * creating it syncs the directory once.
 *
 * Invariants the recovery scan enforces and the rest of the file relies on:
 *   - a segment named seg-N starts with record N and its records are N, N+1, N+2, ...
 *     with no gap (an append starts a new segment whenever next_seq is not last + 1);
 *   - segments, ordered by name, hold strictly increasing, non-overlapping ranges.
 * So the records of a segment are exactly [first, last] and counts are arithmetic.
 *
 * Sequence numbers never repeat within an epoch: at open, next_seq is the maximum of
 * meta's next_seq, the last seq on disk + 1, the acked watermark + 1 and, for a record cut
 * at recovery whose header still carries the expected seq, that seq + 1 (it may have been
 * sent before the damage).
 *
 * Not thread-safe: one owner calls every function.
 */
#define WW_LOG_MODULE "spool"
#include "ww_spool.h"
#include "ww_le.h"
#include "ww_log.h"
#include "ww_spool_lock.h"
#include "ww_time.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define REC_HDR 20u
#define META_LEN 40u
#define ACKED_LEN 24u
#define SEG_NAME_LEN 28u /* "seg-" + 20 digits + ".wws" */
#define SCAN_CHUNK 65536u

static const uint8_t s_rec_magic[4] = {'W', 'W', 'R', '1'};
static const uint8_t s_meta_magic[4] = {'W', 'W', 'M', '1'};
static const uint8_t s_acked_magic[4] = {'W', 'W', 'A', '1'};

/* One segment file. Its records are exactly [first, last]; last == first - 1 when empty. */
struct seg {
    uint64_t first;
    uint64_t last;
    uint64_t bytes;
    uint64_t corrupt_hi; /* highest seq ww_spool_next counted corrupt here (no recount) */
    int64_t written_ns;  /* wall clock of its last append (recovered: the file's mtime) */
};

struct ww_spool {
    ww_spool_conf_t conf; /* conf.dir points at dir */
    char *dir;
    int dirfd;
    int lock_fd; /* holds the directory's lock (ww_spool_lock.h) while open */

    struct seg *segs; /* ordered by first */
    size_t nsegs;
    size_t cap;
    int tail_fd;        /* O_APPEND on segs[nsegs - 1], or -1: next append starts a segment */
    bool tail_dirty;    /* appended since the last fdatasync */
    bool ack_dirty;     /* acked written without fdatasync */
    int ack_fd;         /* acked, open for in-place updates once the first ack is written */
    int ack_slot;       /* slot (0 or 1) the next acked write goes to */
    bool ack_dir_dirty; /* acked was created: its directory entry is not synced yet */
    bool meta_dirty;    /* counters changed since meta was written */
    bool opened;        /* open completed: close may flush */
    int64_t last_sync_ns;
    ww_spool_io_t io;     /* conf.io with the real calls filled in */
    ww_complain_t disk_c; /* the filesystem is full: logged once until it clears */
    bool disk_full;       /* the last append met a full filesystem */
    uint64_t disk_full_appends;
    uint64_t disk_free;

    uint64_t epoch;
    uint64_t next_seq;
    uint64_t meta_next_seq; /* next_seq as last written to meta */
    uint64_t acked;
    uint64_t unacked;
    uint64_t bytes;
    uint64_t dropped;
    uint64_t corrupt;

    /* Read side: a cached fd and the position just past the record last returned. */
    int rd_fd;
    uint64_t rd_fd_first;
    bool rd_valid;
    uint64_t rd_first;
    uint64_t rd_off;
    uint64_t rd_seq;
};

static const uint32_t s_crc_table[256] = {
    0x00000000u, 0xf26b8303u, 0xe13b70f7u, 0x1350f3f4u, 0xc79a971fu, 0x35f1141cu, 0x26a1e7e8u,
    0xd4ca64ebu, 0x8ad958cfu, 0x78b2dbccu, 0x6be22838u, 0x9989ab3bu, 0x4d43cfd0u, 0xbf284cd3u,
    0xac78bf27u, 0x5e133c24u, 0x105ec76fu, 0xe235446cu, 0xf165b798u, 0x030e349bu, 0xd7c45070u,
    0x25afd373u, 0x36ff2087u, 0xc494a384u, 0x9a879fa0u, 0x68ec1ca3u, 0x7bbcef57u, 0x89d76c54u,
    0x5d1d08bfu, 0xaf768bbcu, 0xbc267848u, 0x4e4dfb4bu, 0x20bd8edeu, 0xd2d60dddu, 0xc186fe29u,
    0x33ed7d2au, 0xe72719c1u, 0x154c9ac2u, 0x061c6936u, 0xf477ea35u, 0xaa64d611u, 0x580f5512u,
    0x4b5fa6e6u, 0xb93425e5u, 0x6dfe410eu, 0x9f95c20du, 0x8cc531f9u, 0x7eaeb2fau, 0x30e349b1u,
    0xc288cab2u, 0xd1d83946u, 0x23b3ba45u, 0xf779deaeu, 0x05125dadu, 0x1642ae59u, 0xe4292d5au,
    0xba3a117eu, 0x4851927du, 0x5b016189u, 0xa96ae28au, 0x7da08661u, 0x8fcb0562u, 0x9c9bf696u,
    0x6ef07595u, 0x417b1dbcu, 0xb3109ebfu, 0xa0406d4bu, 0x522bee48u, 0x86e18aa3u, 0x748a09a0u,
    0x67dafa54u, 0x95b17957u, 0xcba24573u, 0x39c9c670u, 0x2a993584u, 0xd8f2b687u, 0x0c38d26cu,
    0xfe53516fu, 0xed03a29bu, 0x1f682198u, 0x5125dad3u, 0xa34e59d0u, 0xb01eaa24u, 0x42752927u,
    0x96bf4dccu, 0x64d4cecfu, 0x77843d3bu, 0x85efbe38u, 0xdbfc821cu, 0x2997011fu, 0x3ac7f2ebu,
    0xc8ac71e8u, 0x1c661503u, 0xee0d9600u, 0xfd5d65f4u, 0x0f36e6f7u, 0x61c69362u, 0x93ad1061u,
    0x80fde395u, 0x72966096u, 0xa65c047du, 0x5437877eu, 0x4767748au, 0xb50cf789u, 0xeb1fcbadu,
    0x197448aeu, 0x0a24bb5au, 0xf84f3859u, 0x2c855cb2u, 0xdeeedfb1u, 0xcdbe2c45u, 0x3fd5af46u,
    0x7198540du, 0x83f3d70eu, 0x90a324fau, 0x62c8a7f9u, 0xb602c312u, 0x44694011u, 0x5739b3e5u,
    0xa55230e6u, 0xfb410cc2u, 0x092a8fc1u, 0x1a7a7c35u, 0xe811ff36u, 0x3cdb9bddu, 0xceb018deu,
    0xdde0eb2au, 0x2f8b6829u, 0x82f63b78u, 0x709db87bu, 0x63cd4b8fu, 0x91a6c88cu, 0x456cac67u,
    0xb7072f64u, 0xa457dc90u, 0x563c5f93u, 0x082f63b7u, 0xfa44e0b4u, 0xe9141340u, 0x1b7f9043u,
    0xcfb5f4a8u, 0x3dde77abu, 0x2e8e845fu, 0xdce5075cu, 0x92a8fc17u, 0x60c37f14u, 0x73938ce0u,
    0x81f80fe3u, 0x55326b08u, 0xa759e80bu, 0xb4091bffu, 0x466298fcu, 0x1871a4d8u, 0xea1a27dbu,
    0xf94ad42fu, 0x0b21572cu, 0xdfeb33c7u, 0x2d80b0c4u, 0x3ed04330u, 0xccbbc033u, 0xa24bb5a6u,
    0x502036a5u, 0x4370c551u, 0xb11b4652u, 0x65d122b9u, 0x97baa1bau, 0x84ea524eu, 0x7681d14du,
    0x2892ed69u, 0xdaf96e6au, 0xc9a99d9eu, 0x3bc21e9du, 0xef087a76u, 0x1d63f975u, 0x0e330a81u,
    0xfc588982u, 0xb21572c9u, 0x407ef1cau, 0x532e023eu, 0xa145813du, 0x758fe5d6u, 0x87e466d5u,
    0x94b49521u, 0x66df1622u, 0x38cc2a06u, 0xcaa7a905u, 0xd9f75af1u, 0x2b9cd9f2u, 0xff56bd19u,
    0x0d3d3e1au, 0x1e6dcdeeu, 0xec064eedu, 0xc38d26c4u, 0x31e6a5c7u, 0x22b65633u, 0xd0ddd530u,
    0x0417b1dbu, 0xf67c32d8u, 0xe52cc12cu, 0x1747422fu, 0x49547e0bu, 0xbb3ffd08u, 0xa86f0efcu,
    0x5a048dffu, 0x8ecee914u, 0x7ca56a17u, 0x6ff599e3u, 0x9d9e1ae0u, 0xd3d3e1abu, 0x21b862a8u,
    0x32e8915cu, 0xc083125fu, 0x144976b4u, 0xe622f5b7u, 0xf5720643u, 0x07198540u, 0x590ab964u,
    0xab613a67u, 0xb831c993u, 0x4a5a4a90u, 0x9e902e7bu, 0x6cfbad78u, 0x7fab5e8cu, 0x8dc0dd8fu,
    0xe330a81au, 0x115b2b19u, 0x020bd8edu, 0xf0605beeu, 0x24aa3f05u, 0xd6c1bc06u, 0xc5914ff2u,
    0x37faccf1u, 0x69e9f0d5u, 0x9b8273d6u, 0x88d28022u, 0x7ab90321u, 0xae7367cau, 0x5c18e4c9u,
    0x4f48173du, 0xbd23943eu, 0xf36e6f75u, 0x0105ec76u, 0x12551f82u, 0xe03e9c81u, 0x34f4f86au,
    0xc69f7b69u, 0xd5cf889du, 0x27a40b9eu, 0x79b737bau, 0x8bdcb4b9u, 0x988c474du, 0x6ae7c44eu,
    0xbe2da0a5u, 0x4c4623a6u, 0x5f16d052u, 0xad7d5351u,
};

uint32_t ww_crc32c(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc = s_crc_table[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
    }
    return ~crc;
}

/* ---- the system calls, through ww_spool_io_t so tests can count and fail them ---- */

static ssize_t s_sys_writev(void *arg, int fd, const struct iovec *iov, int cnt)
{
    (void)arg;
    return writev(fd, iov, cnt);
}

static int s_sys_fdatasync(void *arg, int fd)
{
    (void)arg;
    return fdatasync(fd);
}

static int s_sys_fsync(void *arg, int fd)
{
    (void)arg;
    return fsync(fd);
}

static int64_t s_sys_now(void *arg)
{
    (void)arg;
    return ww_time_now_ns();
}

ww_spool_io_t ww_spool_io_fill(const ww_spool_io_t *io)
{
    ww_spool_io_t r = io ? *io : (ww_spool_io_t){0};
    if (!r.writev) {
        r.writev = s_sys_writev;
    }
    if (!r.fdatasync) {
        r.fdatasync = s_sys_fdatasync;
    }
    if (!r.fsync) {
        r.fsync = s_sys_fsync;
    }
    if (!r.now) {
        r.now = s_sys_now;
    }
    return r;
}

/* fdatasync / fsync through the seam: 0 or -errno. */
static int s_datasync(const ww_spool_t *self, int fd)
{
    return self->io.fdatasync(self->io.arg, fd) < 0 ? -errno : 0;
}

static int s_fullsync(const ww_spool_t *self, int fd)
{
    return self->io.fsync(self->io.arg, fd) < 0 ? -errno : 0;
}

/* ---- small I/O helpers: 0 or -errno, retrying EINTR and short transfers ---- */

static int s_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            return -EIO; /* the file is shorter than our index says */
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static int s_writev_full(const ww_spool_t *self, int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        ssize_t n = self->io.writev(self->io.arg, fd, iov, cnt);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        while (cnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

static void s_close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void s_seg_name(char *buf, size_t cap, uint64_t first)
{
    snprintf(buf, cap, "seg-%020" PRIu64 ".wws", first);
}

/* Parses "seg-<20 digits>.wws"; returns false for any other name or an overflow. */
static bool s_parse_seg_name(const char *name, uint64_t *first)
{
    if (strlen(name) != SEG_NAME_LEN || strncmp(name, "seg-", 4) != 0 ||
        strcmp(name + 24, ".wws") != 0) {
        return false;
    }
    uint64_t v = 0;
    for (int i = 4; i < 24; i++) {
        if (name[i] < '0' || name[i] > '9') {
            return false;
        }
        unsigned d = (unsigned)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *first = v;
    return true;
}

/* Records of sg with seq >= from (arithmetic: a segment holds [first, last]). */
static uint64_t s_seg_count_from(const struct seg *sg, uint64_t from)
{
    uint64_t lo = sg->first > from ? sg->first : from;
    return sg->last >= lo ? sg->last - lo + 1 : 0;
}

/* Bytes statvfs says the spool's filesystem has free for it (0 when unknown). */
static uint64_t s_disk_free(const ww_spool_t *self)
{
    struct statvfs vfs;
    if (fstatvfs(self->dirfd, &vfs) < 0) {
        return 0;
    }
    return (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
}

static int s_fsync_dir(ww_spool_t *self)
{
    return s_fullsync(self, self->dirfd);
}

/* Replaces `name` with buf atomically: tmp file, (fsync), rename, (fsync dir). */
static int s_write_atomic(ww_spool_t *self, const char *name, const char *tmp, const void *buf,
                          size_t len, bool durable)
{
    int rc = 0;
    int fd = openat(self->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        goto cleanup;
    }
    struct iovec iov = {(void *)buf, len};
    rc = s_writev_full(self, fd, &iov, 1);
    if (rc == 0 && durable) {
        rc = s_fullsync(self, fd);
    }
    if (close(fd) < 0 && rc == 0) {
        rc = -errno;
    }
    if (rc == 0 && renameat(self->dirfd, tmp, self->dirfd, name) < 0) {
        rc = -errno;
    }
    if (rc == 0 && durable) {
        rc = s_fsync_dir(self);
    }
cleanup:
    if (rc != 0) {
        unlinkat(self->dirfd, tmp, 0);
    }
    return rc;
}

static int s_write_meta(ww_spool_t *self)
{
    uint8_t b[META_LEN];
    memcpy(b, s_meta_magic, 4);
    ww_put_le64(b + 4, self->epoch);
    ww_put_le64(b + 12, self->next_seq);
    ww_put_le64(b + 20, self->dropped);
    ww_put_le64(b + 28, self->corrupt);
    ww_put_le32(b + 36, ww_crc32c(0, b, 36));
    int rc = s_write_atomic(self, "meta", "meta.tmp", b, sizeof b, true);
    if (rc == 0) {
        self->meta_dirty = false;
        self->meta_next_seq = self->next_seq;
    } else {
        self->meta_dirty = true;
    }
    return rc;
}

/* After a counter changed at run time: persist now, but a failure only defers it. */
static void s_write_meta_soon(ww_spool_t *self)
{
    int rc = s_write_meta(self);
    if (rc != 0) {
        WW_WARN("writing %s/meta failed (%s); retrying at the next change", self->dir,
                strerror(-rc));
    }
}

/* Opens acked for in-place updates, creating it when missing. A file of a size no version
 * writes (it was reported unreadable at open) is emptied first. */
static int s_open_acked(ww_spool_t *self)
{
    int fd = openat(self->dirfd, "acked", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
        self->ack_dir_dirty = true;
        self->ack_slot = 0;
    } else if (errno == EEXIST) {
        fd = openat(self->dirfd, "acked", O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    }
    if (fd < 0) {
        return errno == ELOOP ? -EBADMSG : -errno;
    }
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? -errno : (S_ISREG(st.st_mode) ? 0 : -EBADMSG);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    if (st.st_size != 0 && st.st_size != ACKED_LEN && st.st_size != 2 * ACKED_LEN) {
        if (ftruncate(fd, 0) < 0) {
            rc = -errno;
            close(fd);
            return rc;
        }
        self->ack_slot = 0;
    }
    self->ack_fd = fd;
    return 0;
}

/* Syncs acked's data (and, once after creating it, the directory entry). */
static int s_sync_acked(ww_spool_t *self)
{
    if (self->ack_fd >= 0) {
        int rc = s_datasync(self, self->ack_fd);
        if (rc != 0) {
            return rc;
        }
    }
    if (self->ack_dir_dirty) {
        int rc = s_fsync_dir(self);
        if (rc != 0) {
            return rc;
        }
        self->ack_dir_dirty = false;
    }
    return 0;
}

static int s_write_acked(ww_spool_t *self, uint64_t acked, bool durable)
{
    if (self->ack_fd < 0) {
        int rc = s_open_acked(self);
        if (rc != 0) {
            return rc;
        }
    }
    uint8_t b[ACKED_LEN];
    memcpy(b, s_acked_magic, 4);
    ww_put_le64(b + 4, self->epoch);
    ww_put_le64(b + 12, acked);
    ww_put_le32(b + 20, ww_crc32c(0, b, 20));
    uint64_t off = (uint64_t)self->ack_slot * ACKED_LEN;
    ssize_t n;
    do {
        n = pwrite(self->ack_fd, b, sizeof b, (off_t)off);
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof b) {
        /* Nothing is known about the slot now; the other one still holds the previous
         * watermark, so keep writing this one. */
        return n < 0 ? -errno : -EIO;
    }
    self->ack_slot ^= 1;
    return durable ? s_sync_acked(self) : 0;
}

/* Reads a small file of exactly `len` bytes into buf. Returns 1, 0 when missing, -EBADMSG
 * when it exists but has another size, or another -errno. */
static int s_read_small(ww_spool_t *self, const char *name, uint8_t *buf, size_t len)
{
    int fd = openat(self->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) {
            return 0;
        }
        return errno == ELOOP ? -EBADMSG : -errno;
    }
    struct stat st;
    int rc = 1;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
    } else if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != len) {
        rc = -EBADMSG;
    } else {
        int r = s_pread_full(fd, buf, len, 0);
        rc = r == 0 ? 1 : (r == -EIO ? -EBADMSG : r);
    }
    close(fd);
    return rc;
}

/* ---- the segment index ---- */

static int s_seg_push(ww_spool_t *self, uint64_t first, uint64_t bytes, int64_t written_ns)
{
    if (self->nsegs == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 16;
        struct seg *n = realloc(self->segs, cap * sizeof *n);
        if (!n) {
            return -ENOMEM;
        }
        self->segs = n;
        self->cap = cap;
    }
    self->segs[self->nsegs++] = (struct seg){first, first - 1, bytes, 0, written_ns};
    return 0;
}

static int s_seg_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct seg *)a)->first, y = ((const struct seg *)b)->first;
    return x < y ? -1 : x > y;
}

/* Forgets segs[i] (the file is already gone or abandoned); keeps caches consistent. */
static void s_seg_forget(ww_spool_t *self, size_t i)
{
    struct seg *sg = &self->segs[i];
    if (self->rd_fd >= 0 && self->rd_fd_first == sg->first) {
        s_close_fd(&self->rd_fd);
    }
    if (self->rd_valid && self->rd_first == sg->first) {
        self->rd_valid = false;
    }
    if (i == self->nsegs - 1 && self->tail_fd >= 0) {
        s_close_fd(&self->tail_fd);
        self->tail_dirty = false;
    }
    self->bytes -= sg->bytes;
    memmove(sg, sg + 1, (self->nsegs - i - 1) * sizeof *sg);
    self->nsegs--;
}

/* Unlinks segs[i] and forgets it. A file already gone is not an error. */
static int s_seg_delete(ww_spool_t *self, size_t i)
{
    char name[SEG_NAME_LEN + 1];
    s_seg_name(name, sizeof name, self->segs[i].first);
    if (unlinkat(self->dirfd, name, 0) < 0 && errno != ENOENT) {
        int rc = -errno;
        WW_WARN("cannot delete %s/%s: %s", self->dir, name, strerror(-rc));
        return rc;
    }
    s_seg_forget(self, i);
    return 0;
}

/* Whether segs[0] holds acked records only and is not the open tail (kept for appends
 * until it is full; its acked records are skipped on read): it may go. */
static bool s_oldest_acked(const ww_spool_t *self)
{
    return self->nsegs > 0 && self->segs[0].last <= self->acked &&
           !(self->nsegs == 1 && self->tail_fd >= 0);
}

/* Deletes leading segments whose records are all acked and whose last append is
 * keep_acked_ns old (the kept window, ww_spool.h), except the open tail. */
static int s_gc(ww_spool_t *self)
{
    int64_t now = self->conf.keep_acked_ns > 0 ? self->io.now(self->io.arg) : 0;
    while (s_oldest_acked(self) && (self->conf.keep_acked_ns <= 0 ||
                                    now - self->segs[0].written_ns >= self->conf.keep_acked_ns)) {
        int rc = s_seg_delete(self, 0);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* The bound needs room: acked records kept for a resend go before any unacked one does,
 * whatever their age. Deletes leading all-acked segments while `need` more bytes do not fit
 * (need 0: one segment). Returns how many were deleted, or -errno. */
static int s_evict_acked(ww_spool_t *self, uint64_t need)
{
    int n = 0;
    while (s_oldest_acked(self) &&
           (need == 0 ? n == 0 : self->bytes + need > self->conf.max_bytes)) {
        int rc = s_seg_delete(self, 0);
        if (rc != 0) {
            return rc;
        }
        n++;
    }
    return n;
}

/* ---- recovery ---- */

typedef struct {
    uint64_t good_end;  /* bytes of valid records from the start */
    uint64_t last;      /* seq of the last valid record (first - 1 when none) */
    uint64_t cut;       /* records after good_end (at least 1 when good_end < size) */
    uint64_t seq_floor; /* next_seq must be at least this */
} s_scan_t;

/* Validates the records of an open segment file of `size` bytes named seg-`first`:
 * magic, length inside the file, seq == first, first + 1, ... and the CRC. Stops at the
 * first bad one and counts what follows. Reads only; returns 0 or -errno. */
static int s_scan(int fd, uint64_t size, uint64_t first, uint64_t prev_last, s_scan_t *out)
{
    uint8_t hdr[REC_HDR];
    uint8_t *chunk = malloc(SCAN_CHUNK);
    if (!chunk) {
        return -ENOMEM;
    }
    int rc = 0;
    uint64_t off = 0, expect = first;
    bool usable = first > prev_last; /* else it overlaps earlier segments: all bad */
    while (usable && size - off >= REC_HDR) {
        rc = s_pread_full(fd, hdr, REC_HDR, off);
        if (rc != 0) {
            goto cleanup;
        }
        uint64_t len = ww_get_le32(hdr + 4);
        if (memcmp(hdr, s_rec_magic, 4) != 0 || len > size - off - REC_HDR ||
            ww_get_le64(hdr + 8) != expect) {
            break;
        }
        uint32_t crc = ww_crc32c(0, hdr + 8, 8);
        for (uint64_t done = 0; done < len;) {
            size_t n = len - done < SCAN_CHUNK ? (size_t)(len - done) : SCAN_CHUNK;
            rc = s_pread_full(fd, chunk, n, off + REC_HDR + done);
            if (rc != 0) {
                goto cleanup;
            }
            crc = ww_crc32c(crc, chunk, n);
            done += n;
        }
        if (crc != ww_get_le32(hdr + 16)) {
            break;
        }
        off += REC_HDR + len;
        expect++;
    }
    out->good_end = off;
    out->last = expect - 1;
    out->cut = 0;
    out->seq_floor = 0;
    /* Count what is cut: walk headers that still look plausible; the rest is one. */
    uint64_t p = off, e = expect;
    while (p < size) {
        out->cut++;
        if (size - p < REC_HDR || s_pread_full(fd, hdr, REC_HDR, p) != 0 ||
            memcmp(hdr, s_rec_magic, 4) != 0) {
            break;
        }
        if (usable && ww_get_le64(hdr + 8) == e) {
            out->seq_floor = e + 1; /* this seq may have been sent: never reuse it */
        }
        if (ww_get_le32(hdr + 4) > size - p - REC_HDR) {
            break;
        }
        p += REC_HDR + ww_get_le32(hdr + 4);
        e++;
    }
cleanup:
    free(chunk);
    return rc;
}

/* Scans segs[i], truncating it at the first bad record (deleting it when nothing is left).
 * Sets *removed when the segment was deleted. */
static int s_recover_seg(ww_spool_t *self, size_t i, uint64_t prev_last, uint64_t *seq_floor,
                         bool *removed)
{
    struct seg *sg = &self->segs[i];
    char name[SEG_NAME_LEN + 1];
    s_seg_name(name, sizeof name, sg->first);
    *removed = false;
    int fd = openat(self->dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return -errno;
    }
    int rc = 0;
    s_scan_t sc;
    rc = s_scan(fd, sg->bytes, sg->first, prev_last, &sc);
    if (rc != 0) {
        goto cleanup;
    }
    if (sc.seq_floor > *seq_floor) {
        *seq_floor = sc.seq_floor;
    }
    if (sc.good_end < sg->bytes) {
        WW_WARN("%s/%s: torn or corrupt record at byte %" PRIu64 ": cutting %" PRIu64
                " bytes (%" PRIu64 " record(s))",
                self->dir, name, sc.good_end, sg->bytes - sc.good_end, sc.cut);
        self->corrupt += sc.cut;
        self->meta_dirty = true;
        if (sc.good_end > 0) {
            if (ftruncate(fd, (off_t)sc.good_end) < 0) {
                rc = -errno;
                goto cleanup;
            }
            rc = s_fullsync(self, fd);
            if (rc != 0) {
                goto cleanup;
            }
        }
    }
    self->bytes -= sg->bytes - sc.good_end;
    sg->bytes = sc.good_end;
    sg->last = sc.last;
    if (sg->bytes == 0) {
        close(fd);
        fd = -1;
        if (unlinkat(self->dirfd, name, 0) < 0 && errno != ENOENT) {
            rc = -errno;
            goto cleanup;
        }
        s_seg_forget(self, i);
        *removed = true;
    }
cleanup:
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

/* Lists seg-*.wws regular files into the index, ordered. Other entries are left alone,
 * except our own leftover temp files, which are removed. */
static int s_list(ww_spool_t *self)
{
    int dfd = dup(self->dirfd);
    if (dfd < 0) {
        return -errno;
    }
    DIR *d = fdopendir(dfd);
    if (!d) {
        int rc = -errno;
        close(dfd);
        return rc;
    }
    rewinddir(d);
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            rc = errno ? -errno : 0;
            break;
        }
        uint64_t first;
        if (!s_parse_seg_name(de->d_name, &first)) {
            continue;
        }
        struct stat st;
        if (fstatat(self->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            rc = -errno;
            break;
        }
        if (!S_ISREG(st.st_mode)) {
            WW_WARN("%s/%s is not a regular file; ignored", self->dir, de->d_name);
            continue;
        }
        rc = s_seg_push(self, first, (uint64_t)st.st_size,
                        (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec);
        if (rc != 0) {
            break;
        }
        self->bytes += (uint64_t)st.st_size;
    }
    closedir(d);
    if (self->nsegs > 1) {
        qsort(self->segs, self->nsegs, sizeof *self->segs, s_seg_cmp);
    }
    return rc;
}

/* meta is missing (with segments present) or unreadable: the old stream cannot be
 * continued safely, so its segments are counted as corrupt and deleted. */
static int s_abandon(ww_spool_t *self, const char *why)
{
    uint64_t records = 0, bytes = 0;
    int rc = 0;
    while (self->nsegs > 0) {
        struct seg *sg = &self->segs[0];
        char name[SEG_NAME_LEN + 1];
        s_seg_name(name, sizeof name, sg->first);
        int fd = openat(self->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0) {
            s_scan_t sc;
            if (s_scan(fd, sg->bytes, sg->first, 0, &sc) == 0) {
                records += (sc.last - sg->first + 1) + sc.cut;
            }
            close(fd);
        }
        bytes += sg->bytes;
        rc = s_seg_delete(self, 0);
        if (rc != 0) {
            return rc;
        }
    }
    if (records > 0 || bytes > 0) {
        WW_WARN("%s/meta %s: starting a new epoch; abandoning %" PRIu64 " record(s), %" PRIu64
                " bytes",
                self->dir, why, records, bytes);
    } else {
        WW_WARN("%s/meta %s: starting a new epoch", self->dir, why);
    }
    self->corrupt += records;
    return 0;
}

static uint64_t s_new_epoch(void)
{
    uint64_t e = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &e, sizeof e) != (ssize_t)sizeof e) {
            e = 0;
        }
        close(fd);
    }
    if (e == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        e = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
            ((uint64_t)getpid() << 40) ^ (uint64_t)getpid();
        if (e == 0) {
            e = 1;
        }
    }
    return e;
}

static int s_mkdirs(const char *dir)
{
    char *p = strdup(dir);
    if (!p) {
        return -ENOMEM;
    }
    int rc = 0;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0') {
            continue;
        }
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0700) < 0 && errno != EEXIST) {
            rc = -errno;
            break;
        }
        *s = c;
        if (c == '\0') {
            break;
        }
    }
    free(p);
    return rc;
}

/* Creates and removes a probe file in the directory at; 0 or -errno. Write and execute
 * permission, a read-only mount and a full inode table all show in one real create;
 * access(2) would miss the last two. */
static int s_probe_create(const char *at)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/.ww-probe-%ld", at, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof path) {
        return -ENAMETOOLONG;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        return -errno;
    }
    close(fd);
    return unlink(path) < 0 ? -errno : 0;
}

int ww_spool_probe(const char *dir, char *why, size_t cap)
{
    if (!dir || !*dir) {
        snprintf(why, cap, "no directory given");
        return -EINVAL;
    }
    /* A missing directory is created at the real start: its deepest existing ancestor
     * must then take new entries. Nothing is created here (a check has no side effects). */
    char *at = strdup(dir);
    if (!at) {
        return -ENOMEM;
    }
    int rc = 0;
    struct stat sb;
    while (stat(at, &sb) < 0) {
        rc = -errno;
        char *slash = strrchr(at, '/');
        if (rc != -ENOENT || !slash) {
            break;
        }
        if (slash == at) {
            slash[1] = '\0'; /* "/" */
        } else {
            *slash = '\0';
        }
        rc = 0;
    }
    if (rc == 0 && !S_ISDIR(sb.st_mode)) {
        rc = -ENOTDIR;
    }
    if (rc == 0) {
        rc = s_probe_create(at);
    }
    if (rc < 0 && strcmp(at, dir) == 0) {
        snprintf(why, cap, "%s cannot be used: %s", dir, strerror(-rc));
    } else if (rc < 0) {
        snprintf(why, cap, "%s cannot be created: %s: %s", dir, at, strerror(-rc));
    }
    free(at);
    return rc;
}

static bool s_conf_ok(const ww_spool_conf_t *c)
{
    return c && c->dir && c->dir[0] && c->max_bytes > 0 && c->segment_bytes > 0 &&
           (c->policy == WW_SPOOL_DROP_OLDEST || c->policy == WW_SPOOL_REFUSE) &&
           (c->fsync == WW_FSYNC_ALWAYS || c->fsync == WW_FSYNC_INTERVAL ||
            c->fsync == WW_FSYNC_NEVER);
}

/* Reads meta. Returns 1 (read), 0 (missing), -EBADMSG (garbage) or another -errno. */
static int s_load_meta(ww_spool_t *self, uint64_t *next_seq)
{
    uint8_t b[META_LEN];
    int rc = s_read_small(self, "meta", b, sizeof b);
    if (rc <= 0) {
        return rc;
    }
    uint64_t epoch = ww_get_le64(b + 4);
    *next_seq = ww_get_le64(b + 12);
    if (memcmp(b, s_meta_magic, 4) != 0 || ww_get_le32(b + 36) != ww_crc32c(0, b, 36) ||
        epoch == 0 || *next_seq == 0) {
        return -EBADMSG;
    }
    self->epoch = epoch;
    self->dropped = ww_get_le64(b + 20);
    self->corrupt = ww_get_le64(b + 28);
    return 1;
}

/* Reads the acked watermark of this epoch: the larger of the valid slots of this epoch (0
 * when the file is missing, unreadable or of another epoch), and picks the slot the next
 * write overwrites: the other one. */
static int s_load_acked(ww_spool_t *self)
{
    uint8_t b[2 * ACKED_LEN];
    int rc = s_read_small(self, "acked", b, sizeof b);
    if (rc == -EBADMSG) {
        rc = s_read_small(self, "acked", b, ACKED_LEN); /* one slot: an older version's */
    }
    self->acked = 0;
    self->ack_slot = 0;
    if (rc == 0) {
        return 0;
    }
    if (rc < 0 && rc != -EBADMSG) {
        return rc;
    }
    int valid = 0;
    for (int k = 0; rc == 1 && k < 2; k++) {
        const uint8_t *p = b + (size_t)k * ACKED_LEN;
        if (memcmp(p, s_acked_magic, 4) != 0 || ww_get_le32(p + 20) != ww_crc32c(0, p, 20)) {
            continue; /* a slot torn by a crash, or never written */
        }
        valid++;
        if (ww_get_le64(p + 4) == self->epoch && ww_get_le64(p + 12) >= self->acked) {
            self->acked = ww_get_le64(p + 12);
            self->ack_slot = k ^ 1;
        }
    }
    if (valid == 0) {
        WW_WARN("%s/acked is unreadable; unacked records may be sent again", self->dir);
    }
    return 0;
}

ww_spool_t *ww_spool_open(const ww_spool_conf_t *conf, int *err)
{
    int rc = 0;
    ww_spool_t *self = NULL;
    if (!s_conf_ok(conf)) {
        rc = -EINVAL;
        goto cleanup;
    }
    self = calloc(1, sizeof *self);
    if (!self) {
        rc = -ENOMEM;
        goto cleanup;
    }
    self->dirfd = self->tail_fd = self->rd_fd = self->ack_fd = self->lock_fd = -1;
    self->conf = *conf;
    self->conf.io = NULL;
    self->io = ww_spool_io_fill(conf->io);
    self->dir = strdup(conf->dir);
    if (!self->dir) {
        rc = -ENOMEM;
        goto cleanup;
    }
    self->conf.dir = self->dir;
    rc = s_mkdirs(self->dir);
    if (rc != 0) {
        goto cleanup;
    }
    self->dirfd = open(self->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (self->dirfd < 0) {
        rc = -errno;
        goto cleanup;
    }
    /* Before anything in the directory is read or changed: another agent on it would
     * continue this epoch and delete our segments (ww_spool_lock.h). */
    long holder = 0;
    self->lock_fd = ww_spool_lock_take(self->dirfd, &holder);
    if (self->lock_fd < 0) {
        rc = self->lock_fd;
        if (rc == -EBUSY && holder > 0) {
            WW_ERROR("spool %s is in use by pid %ld", self->dir, holder);
        } else if (rc == -EBUSY) {
            WW_ERROR("spool %s is in use by another process", self->dir);
        } else {
            WW_ERROR("spool %s: cannot lock %s/%s: %s", self->dir, self->dir, WW_SPOOL_LOCK_NAME,
                     strerror(-rc));
        }
        goto cleanup;
    }
    unlinkat(self->dirfd, "meta.tmp", 0);
    unlinkat(self->dirfd, "acked.tmp", 0);
    rc = s_list(self);
    if (rc != 0) {
        goto cleanup;
    }

    uint64_t meta_next = 1;
    rc = s_load_meta(self, &meta_next);
    if (rc < 0 && rc != -EBADMSG) {
        goto cleanup;
    }
    bool meta_valid = rc == 1;
    if (rc != 1) {
        self->dropped = self->corrupt = 0;
        meta_next = 1;
        if (rc == -EBADMSG || self->nsegs > 0) {
            rc = s_abandon(self, rc == -EBADMSG ? "is unreadable" : "is missing");
            if (rc != 0) {
                goto cleanup;
            }
        }
        self->epoch = s_new_epoch();
        if (unlinkat(self->dirfd, "acked", 0) < 0 && errno != ENOENT) {
            rc = -errno;
            goto cleanup;
        }
    }
    rc = s_load_acked(self);
    if (rc != 0) {
        goto cleanup;
    }

    uint64_t prev_last = 0, floor = 1;
    for (size_t i = 0; i < self->nsegs;) {
        bool removed;
        rc = s_recover_seg(self, i, prev_last, &floor, &removed);
        if (rc != 0) {
            goto cleanup;
        }
        if (!removed) {
            prev_last = self->segs[i].last;
            i++;
        }
    }
    rc = s_gc(self);
    if (rc != 0) {
        goto cleanup;
    }

    self->next_seq = meta_next;
    if (prev_last + 1 > self->next_seq) {
        self->next_seq = prev_last + 1;
    }
    if (self->acked + 1 > self->next_seq) {
        self->next_seq = self->acked + 1;
    }
    if (floor > self->next_seq) {
        self->next_seq = floor;
    }
    if (self->next_seq != meta_next) {
        WW_INFO("%s: next sequence number %" PRIu64 " (meta said %" PRIu64 ")", self->dir,
                self->next_seq, meta_next);
    }
    self->unacked = 0;
    for (size_t i = 0; i < self->nsegs; i++) {
        self->unacked += s_seg_count_from(&self->segs[i], self->acked + 1);
    }

    /* Appends continue in the last segment when it has room and no gap would appear. */
    if (self->nsegs > 0) {
        struct seg *t = &self->segs[self->nsegs - 1];
        if (t->bytes < conf->segment_bytes && t->last + 1 == self->next_seq) {
            char name[SEG_NAME_LEN + 1];
            s_seg_name(name, sizeof name, t->first);
            self->tail_fd = openat(self->dirfd, name, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
            if (self->tail_fd < 0) {
                rc = -errno;
                goto cleanup;
            }
        }
    }
    rc = s_write_meta(self); /* also proves the directory is writable */
    if ((rc == -ENOSPC || rc == -EDQUOT) && meta_valid) {
        /* A full filesystem must not keep the agent from starting: the meta on disk holds
         * this epoch, next_seq is recomputed from the segments at every open, and the
         * counters are written again at the next change, sync or close. */
        self->disk_full = true;
        self->disk_free = s_disk_free(self);
        WW_WARN("%s: the filesystem is full (%s, %" PRIu64 " bytes free): meta not rewritten "
                "at open; retried later",
                self->dir, strerror(-rc), self->disk_free);
        rc = 0;
    }
    if (rc != 0) {
        goto cleanup;
    }
    self->last_sync_ns = ww_time_mono_ns();
    self->opened = true;
    WW_DEBUG("%s: epoch %016" PRIx64 ", next %" PRIu64 ", acked %" PRIu64 ", %" PRIu64
             " unacked record(s) in %zu segment(s)",
             self->dir, self->epoch, self->next_seq, self->acked, self->unacked, self->nsegs);

cleanup:
    if (rc != 0) {
        ww_spool_close(&self);
    }
    if (err) {
        *err = rc;
    }
    return self;
}

/* Flushes everything pending: tail data, the acked file, meta counters. */
static int s_sync(ww_spool_t *self)
{
    int rc = 0;
    if (self->tail_dirty && self->tail_fd >= 0) {
        rc = s_datasync(self, self->tail_fd);
        if (rc == 0) {
            self->tail_dirty = false;
        }
    }
    if (self->ack_dirty) {
        int r = s_sync_acked(self);
        if (r == 0) {
            self->ack_dirty = false;
        } else if (rc == 0) {
            rc = r;
        }
    }
    if (self->meta_dirty) {
        int r = s_write_meta(self);
        if (r != 0 && rc == 0) {
            rc = r;
        }
    }
    self->last_sync_ns = ww_time_mono_ns();
    return rc;
}

static bool s_sync_due(const ww_spool_t *self)
{
    return self->conf.fsync == WW_FSYNC_INTERVAL &&
           ww_time_mono_ns() - self->last_sync_ns >= self->conf.fsync_interval_ns;
}

void ww_spool_close(ww_spool_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    ww_spool_t *self = *self_p;
    if (self->opened) {
        if (self->conf.fsync == WW_FSYNC_NEVER) {
            self->tail_dirty = false;
            self->ack_dirty = false;
        }
        if (self->next_seq != self->meta_next_seq) {
            self->meta_dirty = true;
        }
        int rc = s_sync(self);
        if (rc != 0) {
            WW_WARN("%s: flushing at close failed: %s", self->dir, strerror(-rc));
        }
    }
    s_close_fd(&self->tail_fd);
    s_close_fd(&self->rd_fd);
    s_close_fd(&self->ack_fd);
    s_close_fd(&self->dirfd);
    s_close_fd(&self->lock_fd); /* last: the directory is ours until everything is flushed */
    free(self->segs);
    free(self->dir);
    free(self);
    *self_p = NULL;
}

/* Closes the tail for appends (flushing it first); the next append starts a segment. */
static int s_close_tail(ww_spool_t *self)
{
    int rc = 0;
    if (self->tail_fd >= 0 && self->tail_dirty && self->conf.fsync != WW_FSYNC_NEVER) {
        rc = s_datasync(self, self->tail_fd);
    }
    s_close_fd(&self->tail_fd);
    self->tail_dirty = false;
    return rc;
}

static int s_new_segment(ww_spool_t *self)
{
    char name[SEG_NAME_LEN + 1];
    s_seg_name(name, sizeof name, self->next_seq);
    /* O_TRUNC: a file of this name can only hold what a failed append left. */
    int fd = openat(self->dirfd, name,
                    O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        return -errno;
    }
    bool reuse = self->nsegs > 0 && self->segs[self->nsegs - 1].first == self->next_seq;
    if (!reuse) {
        int rc = s_seg_push(self, self->next_seq, 0, self->io.now(self->io.arg));
        if (rc != 0) {
            close(fd);
            unlinkat(self->dirfd, name, 0);
            return rc;
        }
    }
    self->tail_fd = fd;
    if (self->conf.fsync != WW_FSYNC_NEVER) {
        int rc = s_fsync_dir(self);
        if (rc != 0) {
            return rc; /* the segment stays, empty; the append is retried into it */
        }
    }
    return 0;
}

/* DROP_OLDEST: deletes whole oldest segments until `need` more bytes fit. The open tail
 * goes too when it is the oldest left: the append then starts a new segment. */
static int s_make_room(ww_spool_t *self, uint64_t need, uint64_t *dropped)
{
    uint64_t n = 0;
    int rc = 0;
    while (self->nsegs > 0 && self->bytes + need > self->conf.max_bytes) {
        uint64_t lost = s_seg_count_from(&self->segs[0], self->acked + 1);
        rc = s_seg_delete(self, 0);
        if (rc != 0) {
            break;
        }
        n += lost;
        self->unacked -= lost;
    }
    if (n > 0) {
        self->dropped += n;
        WW_WARN("%s: spool full (max %" PRIu64 " bytes): dropped the %" PRIu64
                " oldest unacked record(s)",
                self->dir, self->conf.max_bytes, n);
        s_write_meta_soon(self);
    }
    if (dropped) {
        *dropped = n;
    }
    return rc;
}

/* Writes one record at the end of the tail (starting a segment when needed) and flushes it
 * per the policy. On failure the record is taken back, so the state is as before; a
 * failure that cannot be undone burns seq (next_seq moves past it). Returns 0 or -errno,
 * the system call's own (ENOSPC/EDQUOT for a full filesystem). */
static int s_write_record(ww_spool_t *self, uint64_t seq, const void *data, size_t len)
{
    uint64_t need = REC_HDR + (uint64_t)len;
    int rc = 0;
    if (self->tail_fd >= 0) {
        struct seg *t = &self->segs[self->nsegs - 1];
        if (t->bytes > 0 && t->bytes + need > self->conf.segment_bytes) {
            rc = s_close_tail(self);
            if (rc != 0) {
                return rc;
            }
            rc = s_gc(self); /* the old tail may be all acked already */
            if (rc != 0) {
                return rc;
            }
        }
    }
    if (self->tail_fd < 0) {
        rc = s_new_segment(self);
        if (rc != 0) {
            return rc;
        }
    }
    struct seg *t = &self->segs[self->nsegs - 1];

    uint8_t hdr[REC_HDR];
    memcpy(hdr, s_rec_magic, 4);
    ww_put_le32(hdr + 4, (uint32_t)len);
    ww_put_le64(hdr + 8, seq);
    ww_put_le32(hdr + 16, ww_crc32c(ww_crc32c(0, hdr + 8, 8), data, len));
    struct iovec iov[2] = {{hdr, REC_HDR}, {(void *)data, len}};
    rc = s_writev_full(self, self->tail_fd, iov, len > 0 ? 2 : 1);
    if (rc == 0 && self->conf.fsync == WW_FSYNC_ALWAYS) {
        rc = s_datasync(self, self->tail_fd);
    }
    if (rc != 0) {
        /* Take the record back so the state is as before. If even that fails, what is
         * in the file is unknown: burn the seq and move to a new segment (recovery cuts a
         * torn record; a complete one is found and sent after a restart). */
        if (ftruncate(self->tail_fd, (off_t)t->bytes) < 0) {
            WW_WARN("%s: append of %" PRIu64 " failed and cannot be undone: %s", self->dir, seq,
                    strerror(errno));
            s_close_fd(&self->tail_fd);
            self->tail_dirty = false;
            self->next_seq = seq + 1;
            self->meta_dirty = true;
        }
        return rc;
    }
    t->last = seq;
    t->written_ns = self->io.now(self->io.arg);
    t->bytes += need;
    self->bytes += need;
    self->unacked++;
    self->next_seq = seq + 1;
    if (self->conf.fsync == WW_FSYNC_INTERVAL) {
        self->tail_dirty = true;
        if (s_sync_due(self)) {
            rc = s_sync(self);
        }
    } else if (self->conf.fsync == WW_FSYNC_NEVER) {
        self->tail_dirty = true; /* flushed only by an explicit ww_spool_sync */
    }
    return rc;
}

/* The filesystem is full: logs it (once until it clears) with what statvfs says is free,
 * and whether the policy can do anything about it. */
static void s_disk_full(ww_spool_t *self, int err, bool can_drop)
{
    self->disk_free = s_disk_free(self);
    self->disk_full = true;
    WW_COMPLAIN(&self->disk_c,
                "%s: the filesystem is full (%s): %" PRIu64 " bytes free, the spool holds %" PRIu64
                " bytes (max_bytes %" PRIu64 "); %s",
                self->dir, strerror(-err), self->disk_free, self->bytes, self->conf.max_bytes,
                self->conf.policy == WW_SPOOL_REFUSE
                    ? "policy stop_sampling: batches are refused until there is room"
                : can_drop ? "policy drop_oldest: dropping the oldest batches to make room"
                           : "policy drop_oldest, but nothing is left to drop: batches are "
                             "refused until there is room");
}

/* DROP_OLDEST on a full filesystem: deletes the oldest segment that holds bytes, counting
 * its unacked records in *n. Returns 1 (deleted), 0 (nothing left to delete) or -errno. */
static int s_drop_for_disk(ww_spool_t *self, uint64_t *n)
{
    if (self->nsegs == 0 || self->segs[0].bytes == 0) {
        return 0;
    }
    uint64_t lost = s_seg_count_from(&self->segs[0], self->acked + 1);
    int rc = s_seg_delete(self, 0);
    if (rc != 0) {
        return rc;
    }
    self->unacked -= lost;
    *n += lost;
    return 1;
}

int ww_spool_append(ww_spool_t *self, uint64_t seq, const void *data, size_t len, uint64_t *dropped)
{
    if (dropped) {
        *dropped = 0;
    }
    if (!self || (!data && len > 0) || seq != self->next_seq) {
        return -EINVAL;
    }
    if (len > UINT32_MAX || REC_HDR + (uint64_t)len > self->conf.max_bytes) {
        return -EMSGSIZE;
    }
    uint64_t need = REC_HDR + (uint64_t)len;
    int rc = s_gc(self); /* kept acked records whose time is up */
    if (rc == 0 && self->bytes + need > self->conf.max_bytes) {
        rc = s_evict_acked(self, need);
        rc = rc < 0 ? rc : 0;
    }
    if (rc != 0) {
        return rc;
    }
    if (self->bytes + need > self->conf.max_bytes && self->tail_fd >= 0 &&
        self->segs[self->nsegs - 1].last <= self->acked) {
        /* Full, but the open tail holds only acked records: give its room back first. */
        rc = s_close_tail(self);
        if (rc == 0) {
            rc = s_evict_acked(self, need);
            rc = rc < 0 ? rc : 0;
        }
        if (rc != 0) {
            return rc;
        }
    }
    if (self->bytes + need > self->conf.max_bytes) {
        if (self->conf.policy == WW_SPOOL_REFUSE) {
            self->disk_full = false;
            return -ENOSPC;
        }
        rc = s_make_room(self, need, dropped);
        if (rc != 0) {
            return rc;
        }
    }
    /* A full filesystem is met here, below max_bytes: the same policy, reported as what
     * it is. Each round deletes one segment, so this ends. */
    bool met_full = false;
    uint64_t n = 0;
    for (;;) {
        rc = s_write_record(self, seq, data, len);
        if ((rc != -ENOSPC && rc != -EDQUOT) || self->next_seq != seq) {
            break;
        }
        if (!met_full) {
            met_full = true;
            self->disk_full_appends++;
        }
        /* Kept acked records go first, under either policy. */
        int d = s_evict_acked(self, 0);
        if (d == 0 && self->conf.policy == WW_SPOOL_DROP_OLDEST) {
            d = s_drop_for_disk(self, &n);
        }
        s_disk_full(self, rc, d > 0);
        if (d <= 0) {
            rc = d < 0 ? d : -ENOSPC;
            break;
        }
    }
    if (n > 0) {
        self->dropped += n;
        WW_WARN("%s: filesystem full: dropped the %" PRIu64 " oldest unacked record(s)", self->dir,
                n);
        s_write_meta_soon(self);
        if (dropped) {
            *dropped += n;
        }
    }
    if (rc == 0 && !met_full) {
        self->disk_full = false;
        /* Said once there is room for a couple of segments, not after every append that
         * fits between two drops of a filesystem that stays full. */
        if (self->disk_c.failing && s_disk_free(self) >= 2 * self->conf.segment_bytes) {
            WW_RECOVERED(&self->disk_c, "%s: the filesystem has room for the spool again",
                         self->dir);
        }
    }
    return rc;
}

int ww_spool_ack(ww_spool_t *self, uint64_t seq)
{
    if (!self) {
        return -EINVAL;
    }
    if (seq > self->next_seq - 1) {
        seq = self->next_seq - 1;
    }
    if (seq <= self->acked) {
        return 0;
    }
    bool durable = self->conf.fsync == WW_FSYNC_ALWAYS;
    int rc = s_write_acked(self, seq, durable);
    if (rc != 0) {
        return rc;
    }
    if (self->conf.fsync == WW_FSYNC_INTERVAL) {
        self->ack_dirty = true;
    }
    uint64_t old = self->acked;
    for (size_t i = 0; i < self->nsegs && self->segs[i].first <= seq; i++) {
        const struct seg *sg = &self->segs[i];
        uint64_t lo = sg->first > old + 1 ? sg->first : old + 1;
        uint64_t hi = sg->last < seq ? sg->last : seq;
        if (hi >= lo) {
            self->unacked -= hi - lo + 1;
        }
    }
    self->acked = seq;
    rc = s_gc(self);
    if (rc == 0 && s_sync_due(self)) {
        rc = s_sync(self);
    }
    return rc;
}

/* Counts records [from, sg->last] of a segment found corrupt while reading, once. */
static void s_count_corrupt(ww_spool_t *self, struct seg *sg, uint64_t from, uint64_t to)
{
    if (from <= sg->corrupt_hi) {
        from = sg->corrupt_hi + 1;
    }
    if (to < from) {
        return;
    }
    char name[SEG_NAME_LEN + 1];
    s_seg_name(name, sizeof name, sg->first);
    WW_WARN("%s/%s: record(s) %" PRIu64 "..%" PRIu64 " found corrupt; skipped", self->dir, name,
            from, to);
    self->corrupt += to - from + 1;
    sg->corrupt_hi = to;
    s_write_meta_soon(self);
}

/* Finds the first record > target in sg, from byte off where record `expect` starts.
 * Returns 1 (found, outputs set), 0 (none left in this segment) or -errno. */
static int s_next_in_seg(ww_spool_t *self, struct seg *sg, uint64_t off, uint64_t expect,
                         uint64_t target, uint64_t *seq, void **data, size_t *len)
{
    if (self->rd_fd < 0 || self->rd_fd_first != sg->first) {
        char name[SEG_NAME_LEN + 1];
        s_seg_name(name, sizeof name, sg->first);
        s_close_fd(&self->rd_fd);
        self->rd_fd = openat(self->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (self->rd_fd < 0) {
            return -errno;
        }
        self->rd_fd_first = sg->first;
    }
    uint8_t hdr[REC_HDR];
    while (off < sg->bytes) {
        uint64_t n = 0;
        bool ok = sg->bytes - off >= REC_HDR;
        if (ok) {
            int rc = s_pread_full(self->rd_fd, hdr, REC_HDR, off);
            if (rc != 0) {
                return rc;
            }
            n = ww_get_le32(hdr + 4);
            ok = memcmp(hdr, s_rec_magic, 4) == 0 && n <= sg->bytes - off - REC_HDR &&
                 ww_get_le64(hdr + 8) == expect;
        }
        if (!ok) {
            /* Lost our footing: the rest of this segment cannot be read. */
            s_count_corrupt(self, sg, expect, sg->last);
            return 0;
        }
        if (expect <= target) {
            off += REC_HDR + n;
            expect++;
            continue;
        }
        uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
        if (!buf) {
            return -ENOMEM;
        }
        int rc = s_pread_full(self->rd_fd, buf, (size_t)n, off + REC_HDR);
        if (rc != 0) {
            free(buf);
            return rc;
        }
        off += REC_HDR + n;
        if (ww_crc32c(ww_crc32c(0, hdr + 8, 8), buf, (size_t)n) != ww_get_le32(hdr + 16)) {
            free(buf);
            s_count_corrupt(self, sg, expect, expect);
            expect++;
            continue;
        }
        *seq = expect;
        *data = buf;
        *len = (size_t)n;
        self->rd_valid = true;
        self->rd_first = sg->first;
        self->rd_off = off;
        self->rd_seq = expect;
        return 1;
    }
    return 0;
}

int ww_spool_next(ww_spool_t *self, uint64_t after, uint64_t *seq, void **data, size_t *len)
{
    if (!self || !seq || !data || !len) {
        return -EINVAL;
    }
    *data = NULL;
    *len = 0;
    uint64_t target = after > self->acked ? after : self->acked;
    /* First segment whose last record is past target (lasts are non-decreasing). */
    size_t lo = 0, hi = self->nsegs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (self->segs[mid].last > target) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    for (size_t i = lo; i < self->nsegs; i++) {
        struct seg *sg = &self->segs[i];
        uint64_t off = 0, expect = sg->first;
        if (self->rd_valid && self->rd_first == sg->first && self->rd_seq <= target) {
            off = self->rd_off; /* the sequential case: continue where we stopped */
            expect = self->rd_seq + 1;
        }
        int rc = s_next_in_seg(self, sg, off, expect, target, seq, data, len);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int ww_spool_get(ww_spool_t *self, uint64_t seq, void **data, size_t *len)
{
    if (!self || !data || !len || seq == 0) {
        return -EINVAL;
    }
    *data = NULL;
    *len = 0;
    /* The segment whose records include seq (firsts are increasing). */
    size_t lo = 0, hi = self->nsegs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (self->segs[mid].first <= seq) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == 0 || self->segs[lo - 1].last < seq) {
        return 0;
    }
    struct seg *sg = &self->segs[lo - 1];
    uint64_t got = 0;
    int rc = s_next_in_seg(self, sg, 0, sg->first, seq - 1, &got, data, len);
    if (rc == 1 && got != seq) {
        /* seq itself was corrupt (counted, skipped): the record after it is not asked for. */
        free(*data);
        *data = NULL;
        *len = 0;
        return 0;
    }
    return rc;
}

int ww_spool_sync(ww_spool_t *self)
{
    if (!self) {
        return -EINVAL;
    }
    return s_sync(self);
}

void ww_spool_state(const ww_spool_t *self, ww_spool_state_t *out)
{
    memset(out, 0, sizeof *out);
    if (!self) {
        return;
    }
    out->epoch = self->epoch;
    out->next_seq = self->next_seq;
    out->acked = self->acked;
    out->records = self->unacked;
    for (size_t i = 0; i < self->nsegs && out->oldest == 0; i++) {
        out->oldest = self->segs[i].last >= self->segs[i].first ? self->segs[i].first : 0;
    }
    for (size_t i = 0; i < self->nsegs && self->segs[i].first <= self->acked; i++) {
        const struct seg *sg = &self->segs[i];
        uint64_t hi = sg->last < self->acked ? sg->last : self->acked;
        out->kept += hi >= sg->first ? hi - sg->first + 1 : 0;
    }
    out->bytes = self->bytes;
    out->dropped_batches = self->dropped;
    out->corrupt_records = self->corrupt;
    out->disk_full = self->disk_full;
    out->disk_full_appends = self->disk_full_appends;
    out->disk_free = self->disk_free;
}
