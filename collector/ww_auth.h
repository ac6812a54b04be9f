/* auth: who may write, and as whom.
 *
 * The collector speaks CURVE (ZMQ_CURVE_SERVER) with ZAP enforced for its domain
 * (ZMQ_ZAP_ENFORCE_DOMAIN): a handshake is admitted only when this module's ZAP handler,
 * running in its own thread, finds the agent's public key in the allowlist
 * (lib/ww_allowlist.h: its format and parser). One enrolled agent per line:
 *
 *     <agent public key, Z85>  <agent_id>  <node pattern> [<node pattern> ...]
 *     # e.g.
 *     rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7  agent-okc1-r01  okc1-h1-r01-*
 *
 * Node patterns are fnmatch(3) globs. Blank lines are ignored; a word starting with # starts
 * a comment to the end of the line (except a first word that is a valid key: Z85 keys may
 * contain #). Messages
 * carry the authenticated key (ZAP User-Id); the ingest path checks that the envelope's
 * agent_id is the key's and that every node it writes matches one of the key's patterns.
 * ww_auth_reload() re-reads the file (on SIGHUP); a file with an error is refused whole
 * and the previous list stays in force.
 *
 * A refused handshake is logged at WARN with the peer's address and key, rate-limited as
 * ww_zmon_limit_t says (first one, then at most one line per growing interval with the
 * count of those not logged); every one is counted (ww_auth_stats, and as reason "auth"
 * of waferwatch_collector_handshake_failures_total by ww_zmon).
 */
#ifndef WW_AUTH_H
#define WW_AUTH_H

#include <stddef.h>
#include <stdint.h>

typedef struct ww_auth ww_auth_t;

/* Loads the allowlist and starts the ZAP handler on ctx (inproc://zeromq.zap.01).
 * Returns NULL with `why` set when the file is unreadable or invalid. */
ww_auth_t *ww_auth_new(void *zmq_ctx, const char *allowlist_path, char *why, size_t why_len);

/* Stops the handler thread and frees; NULLs *self_p; safe on NULL and twice. Call before
 * terminating the ZeroMQ context. */
void ww_auth_destroy(ww_auth_t **self_p);

/* Re-reads the allowlist. Returns the number of enrolled keys, or a negative errno with the
 * reason logged (the old list stays). */
int ww_auth_reload(ww_auth_t *self);

/* Checks an authenticated key's claims. Returns 0 when allowed; -EACCES with `why` set
 * when the key is unknown (revoked since it connected), the agent_id is not the key's,
 * or the node is not among its patterns. node_id may be NULL to check only agent_id. */
int ww_auth_check(ww_auth_t *self, const char *key_z85, const char *agent_id, const char *node_id,
                  char *why, size_t why_len);

/* Names a message's sender for a log line, from what is known: the authenticated key
 * (ZAP User-Id, "" or NULL when none), the agent id the envelope claims (NULL or "" when
 * it did not decode that far) and the agent id the allowlist enrols the key as, e.g.
 * "agent-okc1-r01 (key rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7)" or "key rq:... (enrolled
 * as agent-okc1-r01)". self may be NULL (insecure mode: no keys). Writes at most cap
 * bytes, NUL-terminated. */
void ww_auth_describe(ww_auth_t *self, const char *key_z85, const char *agent_id, char *out,
                      size_t cap);

typedef struct {
    uint64_t admitted, refused; /* ZAP handshakes */
} ww_auth_stats_t;

void ww_auth_stats(ww_auth_t *self, ww_auth_stats_t *out);

#endif
