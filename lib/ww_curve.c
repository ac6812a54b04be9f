/* ww_curve: see ww_curve.h. */
#include "ww_curve.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

int ww_curve_z85_ok(const char *s)
{
    uint8_t raw[32];
    return s && strlen(s) == WW_Z85_KEY_LEN && zmq_z85_decode(raw, s) != NULL;
}

size_t ww_curve_stem_len(const char *name)
{
    size_t n = strlen(name);
    if (n > 4 && (strcmp(name + n - 4, ".key") == 0 || strcmp(name + n - 4, ".pub") == 0)) {
        return n - 4;
    }
    return n;
}

static char *s_trim(char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) {
        s[--n] = '\0';
    }
    return s;
}

int ww_curve_load(const char *path, int need_secret, ww_curve_key_t *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        snprintf(why, why_len, "%s: %s", path, strerror(e));
        return -e;
    }
    char line[256];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = s_trim(line);
        if (*s == '\0' || *s == '#') {
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(why, why_len, "%s:%d: expected `public = KEY` or `secret = KEY`", path,
                     lineno);
            rc = -EINVAL;
            break;
        }
        *eq = '\0';
        char *name = s_trim(s), *value = s_trim(eq + 1);
        char *dst = strcmp(name, "public") == 0   ? out->public_z85
                    : strcmp(name, "secret") == 0 ? out->secret_z85
                                                  : NULL;
        if (!dst) {
            snprintf(why, why_len, "%s:%d: unknown name \"%s\" (public or secret)", path, lineno,
                     name);
            rc = -EINVAL;
            break;
        }
        if (!ww_curve_z85_ok(value)) {
            snprintf(why, why_len, "%s:%d: %s is not a 40-character Z85 key", path, lineno, name);
            rc = -EINVAL;
            break;
        }
        memcpy(dst, value, WW_Z85_KEY_LEN + 1);
    }
    /* The content before the mode: a .pub given where a secret key belongs is 0644 by
     * design, and "readable by others" would send the operator to chmod the wrong file. */
    struct stat st;
    int have_st = fstat(fileno(f), &st) == 0;
    fclose(f);
    if (rc == 0 && out->public_z85[0] == '\0') {
        snprintf(why, why_len, "%s: no public key", path);
        rc = -EINVAL;
    }
    if (rc == 0 && need_secret && out->secret_z85[0] == '\0') {
        size_t stem = ww_curve_stem_len(path);
        if (stem < strlen(path)) {
            snprintf(why, why_len,
                     "%s: this is a public key file (it holds no secret key); give the secret "
                     "key file %.*s.key",
                     path, (int)stem, path);
        } else {
            snprintf(why, why_len,
                     "%s: this is a public key file (it holds no secret key); give the secret "
                     "key file (NAME.key from `waferwatch keygen NAME`)",
                     path);
        }
        rc = -EINVAL;
    }
    if (rc == 0 && need_secret && have_st && (st.st_mode & 077) != 0) {
        snprintf(why, why_len,
                 "%s: holds a secret key but is readable by others (mode %03o); "
                 "chmod 600 it",
                 path, (unsigned)(st.st_mode & 0777));
        rc = -EPERM;
    }
    if (rc == 0 && need_secret) {
        /* The public half must belong to the secret half. */
        char derived[WW_Z85_KEY_LEN + 1];
        if (zmq_curve_public(derived, out->secret_z85) != 0 ||
            strcmp(derived, out->public_z85) != 0) {
            snprintf(why, why_len, "%s: the public key does not match the secret key", path);
            rc = -EINVAL;
        }
    }
    return rc;
}

static int s_write(const char *path, mode_t mode, const char *text, char *why, size_t why_len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        int e = errno;
        snprintf(why, why_len, "%s: %s", path,
                 e == EEXIST ? "exists; not overwritten" : strerror(e));
        return -e;
    }
    size_t n = strlen(text);
    int rc = 0;
    if (fchmod(fd, mode) != 0 || write(fd, text, n) != (ssize_t)n || fsync(fd) != 0) {
        rc = -errno;
        snprintf(why, why_len, "%s: %s", path, strerror(errno));
    }
    close(fd);
    return rc;
}

int ww_curve_keygen(const char *prefix, ww_curve_key_t *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof *out);
    if (!zmq_has("curve")) {
        snprintf(why, why_len, "this libzmq was built without CURVE support");
        return -ENOTSUP;
    }
    if (zmq_curve_keypair(out->public_z85, out->secret_z85) != 0) {
        snprintf(why, why_len, "zmq_curve_keypair: %s", zmq_strerror(errno));
        return -errno;
    }
    char path[4096], text[256];
    int stem = (int)ww_curve_stem_len(prefix);
    snprintf(path, sizeof path, "%.*s.key", stem, prefix);
    snprintf(text, sizeof text,
             "# waferwatch CURVE key pair: keep this file secret (mode 0600)\n"
             "public = %s\nsecret = %s\n",
             out->public_z85, out->secret_z85);
    int rc = s_write(path, 0600, text, why, why_len);
    if (rc < 0) {
        return rc;
    }
    snprintf(path, sizeof path, "%.*s.pub", stem, prefix);
    snprintf(text, sizeof text, "# waferwatch CURVE public key\npublic = %s\n", out->public_z85);
    return s_write(path, 0644, text, why, why_len);
}
