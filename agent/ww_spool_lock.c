/* ww_spool_lock: see ww_spool_lock.h. */
#include "ww_spool_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* The pid written in the lock file, or 0 when it holds none (not written yet). */
static long s_read_holder(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    char *end = NULL;
    long pid = strtol(buf, &end, 10);
    return end != buf && pid > 0 ? pid : 0;
}

int ww_spool_lock_take(int dirfd, long *holder)
{
    if (holder) {
        *holder = 0;
    }
    int fd = openat(dirfd, WW_SPOOL_LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        return -errno;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        if (rc == -EBUSY && holder) {
            *holder = s_read_holder(fd);
        }
        close(fd);
        return rc;
    }
    /* Ours now: the previous holder's pid (it exited) is replaced by ours. */
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)len, 0) != (ssize_t)len) {
        int rc = -errno;
        close(fd);
        return rc < 0 ? rc : -EIO;
    }
    return fd;
}
