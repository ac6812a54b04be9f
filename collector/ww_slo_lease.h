/* slo_lease: which collector's SLO evaluator leads, through the lease row slo_leader
 * (migration 0023). Every collector given a phases file runs the evaluator; the one that
 * holds the lease evaluates, the others follow (they only poll the lease).
 *
 * The lease, with evaluation.interval I:
 *   lease    L = I: the holder's lease lasts I past its last renewal (clock_timestamp() of
 *            the server: one clock for every collector, none of theirs);
 *   poll     P = I / 4: a follower tries to take the lease over every P; the leader renews
 *            it every P (one UPDATE of one row) and first thing in each evaluation.
 *   takeover UPDATE slo_leader SET term = term + 1, holder = me ... WHERE expires_at <
 *            clock_timestamp() RETURNING term: the new term is this leader's fencing token;
 *   renew    UPDATE ... SET expires_at = clock_timestamp() + L WHERE term = my term; no
 *            row: deposed (another collector took over), the caller becomes a follower.
 * (A takeover that waited for the row lock stamps since, renewed_at and expires_at with the
 * time its UPDATE began, up to P early: its first evaluation renews at once.)
 * Both are one UPDATE of the same row: PostgreSQL serialises them on its row lock and
 * re-checks the WHERE of the one that waited, so of a takeover and a renewal (or an
 * evaluation, whose transaction renews first and holds the row lock to its COMMIT)
 * whichever commits first wins and the other finds its WHERE false.
 *
 * Leadership moves within 2 I of the leader's failure, whatever the failure:
 *   dies (kill -9, host lost): its session ends, its transaction rolls back; its lease,
 *     last renewed at most P before, expires at most L later; a follower takes over at its
 *     next poll: <= P + L + P = 1.5 I.
 *   hangs (SIGSTOP) between evaluations: its session and any session advisory lock would
 *     live on (which is why this is a lease and not only an advisory lock); its lease
 *     expires as above. Hangs inside an evaluation: its open transaction holds the row
 *     lock, which would block every takeover for as long as it hangs. The evaluator's
 *     session therefore runs with idle_in_transaction_session_timeout = L: the server
 *     ends a session idle in a transaction for L, rolling back and releasing the row; the
 *     lease (its last committed renewal) has expired by then too. A follower's takeover
 *     runs with lock_timeout = P, so that it never waits long behind a leader's evaluation
 *     and polls again instead: takeover <= L + 2 P = 1.5 I after the hang. (A session stuck
 *     in a statement, not idle, is not covered: an evaluation's statements are short and
 *     their results small.)
 *   loses its database session (network, a terminated backend, its role locked): as dies,
 *     seen from the database; the old leader keeps reconnecting and, once it can, finds its
 *     term gone at its next renewal.
 * An evaluation that takes longer than I holds the row to its COMMIT and renews again just
 * before it, so a slow but live leader keeps the lease.
 *
 * A deposed leader's writes: the evaluation's transaction renews first; no row means
 * deposed, and the caller rolls the whole evaluation back, logs it once and follows. Were
 * the client wrong, the database refuses anyway: alerts and alert_transitions carry the
 * term, and the trigger ww_slo_fence() refuses (SQLSTATE WW001) a term that is not
 * slo_leader's. NOTIFY is transactional, so a rolled-back evaluation notifies nothing; the
 * caller renews again after COMMIT and pushes to Alertmanager only when still the leader.
 *
 * Every function takes the evaluator's own connection (the caller's) and returns the
 * result of one exchange with the server; none keeps state.
 */
#ifndef WW_SLO_LEASE_H
#define WW_SLO_LEASE_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

/* The lease L for an evaluation interval (see above): I, and at least 200 ms. */
int64_t ww_slo_lease_ns(int64_t interval_ns);
/* The poll period P: L / 4. */
int64_t ww_slo_lease_poll_ns(int64_t interval_ns);

/* The session settings of an evaluator's connection: idle_in_transaction_session_timeout
 * = L. Call after each connect. Returns 0 or -EIO. */
int ww_slo_lease_session(PGconn *conn, int64_t interval_ns);

/* Takes the lease over for holder when it has expired, in its own transaction with
 * lock_timeout = P. Returns 1 with *term set (the new fencing token) and prev (cap bytes)
 * the previous holder ("" when none), 0 when another holds an unexpired lease or the row
 * stayed locked for P (a leader evaluating), -EIO on any other failure (the connection
 * lost, the table missing: logged by the caller). */
int ww_slo_lease_take(PGconn *conn, const char *holder, int64_t interval_ns, int64_t *term,
                      char *prev, size_t cap);

/* Renews the lease of term for L from now. Inside the caller's transaction when one is
 * open (then it holds the row to COMMIT), else alone. Returns 1 renewed, 0 deposed (term is
 * no longer slo_leader's), -EIO on failure (the connection lost: the lease may still be
 * the caller's; it tries again at its next renewal). */
int ww_slo_lease_renew(PGconn *conn, int64_t term, int64_t interval_ns);

/* Hands the lease of term back (a collector stopping): it expires now, so that a follower
 * takes it over at its next poll instead of after a lease. Returns 1 released, 0 when term
 * no longer held it, -EIO on failure (it then expires by itself). */
int ww_slo_lease_release(PGconn *conn, int64_t term);

/* The lease as it stands: *term and holder (cap bytes). Returns 0 or -EIO. */
int ww_slo_lease_read(PGconn *conn, int64_t *term, char *holder, size_t cap);

#endif
