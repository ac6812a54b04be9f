/* ww_spool_lock: one agent per spool directory.
 *
 * Two agents on one spool continue the same epoch, append under the same sequence
 * numbers and delete each other's segments: the collector counts duplicates and data is
 * lost without a trace. So the spool directory holds a lock file, `lock`, locked with
 * flock(LOCK_EX | LOCK_NB) for as long as the spool is open. The kernel releases the lock
 * when its holder exits, however it exits (a crash, SIGKILL): a stale file never blocks a
 * restart, and nobody has to delete it. The file is never removed (removing it would let
 * a third opener lock a new inode while the second still holds the old one).
 *
 * Contents: the holder's pid in decimal and a newline, written after the lock is taken,
 * for the message of the one refused ("spool DIR is in use by pid N"). It is advice, not
 * the lock: a pid read while the holder has not written it yet reads as 0 (unknown).
 *
 * flock, not fcntl(F_SETLK): a POSIX record lock is the process's, so a second open in
 * the same process would not conflict and closing any descriptor of the file would drop
 * it; a flock belongs to the open file description, which is ours alone (O_CLOEXEC: not
 * inherited by a child that execs).
 */
#ifndef WW_SPOOL_LOCK_H
#define WW_SPOOL_LOCK_H

/* The lock file's name inside the spool directory. */
#define WW_SPOOL_LOCK_NAME "lock"

/* Takes the lock of the directory open as dirfd (creating the lock file, mode 0600) and
 * writes this process's pid into it. Returns the descriptor that holds the lock (>= 0;
 * the caller closes it to release the lock); -EBUSY when another open file description
 * holds it, with *holder (may be NULL) set to the pid its file names (0 when unknown);
 * or another negative errno (the file cannot be created or locked). */
int ww_spool_lock_take(int dirfd, long *holder);

#endif
