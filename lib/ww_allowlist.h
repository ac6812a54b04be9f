/* ww_allowlist: the allowlist file, the contract between `waferwatch enroll`, which prints
 * its lines, and the collector (ww_auth), which admits what it lists. One enrolled agent
 * per line:
 *
 *     <agent public key, Z85>  <agent_id>  <node pattern> [<node pattern> ...]
 *
 * at most 64 node patterns (fnmatch(3) globs), an agent_id of at most 128 bytes, each key
 * once. Blank lines are ignored; a word starting with # starts a comment to the end of the
 * line (except a first word that is a valid key: Z85 keys may contain #). A file is at
 * most 16 MiB. In lib/ so that the CLI checks a line without linking the collector.
 */
#ifndef WW_ALLOWLIST_H
#define WW_ALLOWLIST_H

#include "ww_curve.h"

#include <stddef.h>

#define WW_ALLOWLIST_MAX_PATTERNS 64
#define WW_ALLOWLIST_MAX_FILE (16u << 20)

typedef struct {
    char key[WW_Z85_KEY_LEN + 1];
    char *agent_id;
    char **patterns;
    size_t n_patterns;
} ww_allowlist_entry_t;

typedef struct {
    ww_allowlist_entry_t *v; /* sorted by key */
    size_t n;
} ww_allowlist_t;

/* Parses text (len bytes; name for errors) into *out, sorted by key. Returns 0, or
 * -EINVAL with "name:line: reason" (or "name: key ... is listed twice") in why, or -ENOMEM;
 * *out is then empty. */
int ww_allowlist_parse(const char *text, size_t len, const char *name, ww_allowlist_t *out,
                       char *why, size_t why_len);

/* Reads and parses the file at path into *out. Returns 0 or a negative errno with
 * "path: reason" or "path:line: reason" in why (-EFBIG past 16 MiB). */
int ww_allowlist_load(const char *path, ww_allowlist_t *out, char *why, size_t why_len);

/* The entry of key (Z85), or NULL. */
const ww_allowlist_entry_t *ww_allowlist_find(const ww_allowlist_t *l, const char *key);

/* Frees the entries; *l is then empty (safe twice). */
void ww_allowlist_free(ww_allowlist_t *l);

/* Parses a buffer only to check it: 0 or -EINVAL with the reason in why. */
int ww_allowlist_check(const char *text, size_t len, const char *name, char *why, size_t why_len);

/* Reads and parses a file only to check it: the number of enrolled keys, or a negative
 * errno with the reason in why. */
int ww_allowlist_load_check(const char *path, char *why, size_t why_len);

#endif
