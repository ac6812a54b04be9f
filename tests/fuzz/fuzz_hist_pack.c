/* fuzz_hist_pack: libFuzzer target of the two decoders of a stored histogram, both fed
 * untrusted bytes by PostgreSQL (the binary recv and the text input of the ww_hist type):
 * ww_hist_unpack()/ww_hist_merge_packed()/ww_hist_merge_stored() on the input as bytes,
 * ww_hist_text_parse() on a NUL-terminated copy of it.
 *
 * Invariants checked (a violation traps):
 *  - a refusal returns -EINVAL (or -ENOMEM) with a reason and leaves the histogram empty;
 *    ww_hist_merge_packed refuses the same input and leaves its dst unchanged;
 *  - accepted bytes are canonical: ww_hist_pack() of the result gives back exactly the
 *    input, and the result passes ww_hist_check_form() (the stored form, ww_hist_pack.h);
 *  - ww_hist_merge_packed() into an empty histogram of the same scale gives the unpacked
 *    histogram, and into one of another scale holding a value gives what ww_hist_merge()
 *    of the unpacked histogram gives;
 *  - accepted text passes ww_hist_check_form() and round-trips: format, parse, same histogram;
 *    its packed form unpacks to it too.
 */
#include "ww_hist.h"
#include "ww_hist_pack.h"
#include "ww_hist_text.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_hist_pack: invariant violated: %s (%s:%d)\n", #cond, __FILE__,   \
                    __LINE__);                                                                     \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

#include "fuzz_hist_same.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ww_hist_merge_stored() on any bytes, into a histogram holding a value: it may accept
 * bytes the full check refuses (only non-canonical orders), but whatever it accepts leaves
 * a histogram of a valid form whose count grew by exactly the input's count, and whatever
 * it refuses leaves dst as it was; when the full decoder accepts the bytes, it gives what
 * ww_hist_merge_packed() gives. Under ASan this is the memory safety of the SQL aggregate's
 * path over corrupt stored bytes. */
static void s_stored(const uint8_t *data, size_t size, int scale)
{
    ww_hist_t d, full;
    ww_hist_init(&d, scale);
    ww_hist_init(&full, scale);
    ww_hist_record(&d, 0.25);
    ww_hist_record(&full, 0.25);
    const char *why = NULL;
    int rc = ww_hist_merge_stored(&d, data, size, &why);
    int rf = ww_hist_merge_packed(&full, data, size, &why);
    if (rc != 0) {
        CHECK(rc == -EINVAL || rc == -ENOMEM || rc == -EOVERFLOW);
        CHECK(rf != 0);
        CHECK(d.count == 1 && d.min == 0.25 && d.sum == 0.25 && ww_hist_nonempty(&d) == 1);
    } else {
        CHECK(ww_hist_check_form(&d) == 0 && d.count >= 1);
        if (rf == 0) {
            fuzz_check_same(&full, &d);
        }
    }
    ww_hist_fini(&d);
    ww_hist_fini(&full);
}

static void s_bytes(const uint8_t *data, size_t size)
{
    s_stored(data, size, (int)((size * 5) % (WW_HIST_MAX_SCALE + 1)));
    ww_hist_t h;
    ww_hist_init(&h, (int)(size % (WW_HIST_MAX_SCALE + 1)));
    const char *why = NULL;
    int rc = ww_hist_unpack(data, size, &h, &why);
    ww_hist_t d;
    ww_hist_init(&d, (int)((size * 7) % (WW_HIST_MAX_SCALE + 1)));
    ww_hist_record(&d, 0.25);
    if (rc != 0) {
        CHECK(rc == -EINVAL || rc == -ENOMEM);
        CHECK(why != NULL && why[0] != '\0');
        CHECK(h.count == 0 && h.len == 0 && isnan(h.min) && ww_hist_check_form(&h) == 0);
        why = NULL;
        int mrc = ww_hist_merge_packed(&d, data, size, &why);
        CHECK(mrc == rc || mrc == -ENOMEM);
        CHECK(d.count == 1 && d.min == 0.25 && d.sum == 0.25 && ww_hist_nonempty(&d) == 1);
        ww_hist_fini(&d);
        ww_hist_fini(&h);
        return;
    }
    CHECK(ww_hist_check_form(&h) == 0);
    size_t cap = ww_hist_pack_bound(&h);
    uint8_t *buf = malloc(cap);
    if (buf) {
        long n = ww_hist_pack(&h, buf, cap);
        CHECK(n > 0 && (size_t)n == size && memcmp(buf, data, size) == 0);
        free(buf);
    }
    ww_hist_t m;
    ww_hist_init(&m, h.scale);
    rc = ww_hist_merge_packed(&m, data, size, &why);
    CHECK(rc == 0 || rc == -ENOMEM);
    if (rc == 0) {
        fuzz_check_same(&h, &m);
    }
    ww_hist_fini(&m);
    /* Into a histogram (of another scale, most often) holding a value. */
    ww_hist_t e;
    ww_hist_init(&e, d.scale);
    ww_hist_record(&e, 0.25);
    int r1 = ww_hist_merge(&e, &h), r2 = ww_hist_merge_packed(&d, data, size, &why);
    if (r1 != -ENOMEM && r2 != -ENOMEM) {
        CHECK(r1 == r2);
        fuzz_check_same(&e, &d);
    }
    ww_hist_fini(&e);
    ww_hist_fini(&d);
    ww_hist_fini(&h);
}

static void s_text(const uint8_t *data, size_t size)
{
    char *t = malloc(size + 1);
    if (!t) {
        return;
    }
    memcpy(t, data, size);
    t[size] = '\0';
    ww_hist_t h;
    ww_hist_init(&h, 0);
    char err[256];
    err[0] = '\0';
    int rc = ww_hist_text_parse(t, &h, err, sizeof err);
    free(t);
    if (rc != 0) {
        CHECK(rc == -EINVAL || rc == -ENOMEM);
        CHECK(err[0] != '\0' && memchr(err, '\0', sizeof err) != NULL);
        CHECK(h.count == 0 && h.len == 0 && isnan(h.min));
        ww_hist_fini(&h);
        return;
    }
    CHECK(ww_hist_check_form(&h) == 0);
    long n = ww_hist_text_format(&h, NULL, 0);
    CHECK(n > 0);
    char *out = malloc((size_t)n + 1);
    if (out) {
        CHECK(ww_hist_text_format(&h, out, (size_t)n + 1) == n);
        ww_hist_t back;
        ww_hist_init(&back, 0);
        rc = ww_hist_text_parse(out, &back, err, sizeof err);
        if (rc == -EINVAL) {
            fprintf(stderr, "fuzz_hist_pack: own text refused: %s\n%s\n", err, out);
        }
        CHECK(rc == 0 || rc == -ENOMEM);
        if (rc == 0) {
            fuzz_check_same(&h, &back);
        }
        ww_hist_fini(&back);
        free(out);
    }
    size_t cap = ww_hist_pack_bound(&h);
    uint8_t *buf = malloc(cap);
    if (buf) {
        long m = ww_hist_pack(&h, buf, cap);
        CHECK(m > 0);
        ww_hist_t u;
        ww_hist_init(&u, 0);
        const char *why;
        rc = ww_hist_unpack(buf, (size_t)m, &u, &why);
        CHECK(rc == 0 || rc == -ENOMEM);
        if (rc == 0) {
            fuzz_check_same(&h, &u);
        }
        ww_hist_fini(&u);
        free(buf);
    }
    ww_hist_fini(&h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_bytes(data, size);
    s_text(data, size);
    return 0;
}
