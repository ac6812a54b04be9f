/* ww_curve: CURVE key files, shared by the agent, the collector and `waferwatch keygen`.
 *
 * A key file is text, one `name = value` per line, values in Z85 (40 characters):
 *   NAME.key   public = <z85>      mode 0600: the secret half stays with its owner
 *              secret = <z85>
 *   NAME.pub   public = <z85>      mode 0644: handed to the peer (the collector's to every
 *                                  agent; each agent's to the collector's allowlist)
 * Lines starting with # and blank lines are ignored.
 */
#ifndef WW_CURVE_H
#define WW_CURVE_H

#include <stddef.h>

#define WW_Z85_KEY_LEN 40

typedef struct {
    char public_z85[WW_Z85_KEY_LEN + 1];
    char secret_z85[WW_Z85_KEY_LEN + 1]; /* empty when the file holds only the public key */
} ww_curve_key_t;

/* Reads a key file. Returns 0, or a negative errno with `why` saying what is wrong and
 * where ("agent.key:2: secret is not a 40-character Z85 key"). With need_secret, the
 * content is checked first: a file with only a public key (a .pub) is -EINVAL, "this is
 * a public key file"; then a secret key file readable by group or others is refused
 * (-EPERM), as ssh does. Without need_secret either file does (only the public half is
 * used). */
int ww_curve_load(const char *path, int need_secret, ww_curve_key_t *out, char *why,
                  size_t why_len);

/* Generates a key pair and writes PREFIX.key (0600) and PREFIX.pub (0644), refusing to
 * overwrite existing files. A PREFIX that already ends in .key or .pub is taken without
 * that suffix (`keygen x.key` writes x.key and x.pub, not x.key.key). Returns 0 or a
 * negative errno (why says which file). */
int ww_curve_keygen(const char *prefix, ww_curve_key_t *out, char *why, size_t why_len);

/* The length of name without a trailing ".key" or ".pub": the NAME of NAME.key. */
size_t ww_curve_stem_len(const char *name);

/* True when s is a 40-character Z85 string that decodes to 32 bytes. */
int ww_curve_z85_ok(const char *s);

#endif
