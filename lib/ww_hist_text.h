/* ww_hist_text: the readable form of a ww_hist histogram, the text input and output of the
 * PostgreSQL type ww_hist (pgext/), a JSON object so that `h::text::jsonb` works in SQL and
 * any tool can read it:
 *
 *   {"scale":6,"count":94,"sum":5.3117,"min":0.0008,"max":0.3781,"zero":0,"underflow":0,
 *    "overflow":0,"buckets":[[-712,1],[-700,2]]}
 *
 * Output: exactly these keys in this order, no spaces; doubles in the shortest form that
 * reads back to the same double (as PostgreSQL's float8 output); min and max null when no
 * finite value was recorded; buckets the non-empty ones, [index, count], ascending.
 *
 * Input: the same object with the keys in any order and JSON whitespace anywhere between
 * tokens; "scale", "count" and "buckets" are required; "sum" (0), "zero", "underflow",
 * "overflow" (0) and "min"/"max" (null) may be left out. Bucket indexes strictly ascending,
 * counts >= 1, every integer a plain JSON integer (no fraction or exponent) in range, doubles
 * finite. The result must pass the same checks as a decoded packed histogram
 * (ww_hist_pack.h, ww_hist_check_form: count equals its parts, indexes in range, min and
 * max both null or both numbers with min <= max, sum 0 when they are null...). Unknown or
 * repeated keys are refused.
 */
#ifndef WW_HIST_TEXT_H
#define WW_HIST_TEXT_H

#include "ww_hist.h"

#include <stddef.h>

/* Writes the text form of h (valid, as for ww_hist_pack) into out[0 .. cap), NUL-terminated.
 * Returns its length (without the NUL) when it fits, else the length it needs (>= cap),
 * as snprintf; -EINVAL when h is invalid. */
long ww_hist_text_format(const ww_hist_t *h, char *out, size_t cap);

/* Parses the NUL-terminated text s into h (re)initialised as by ww_hist_unpack. Returns 0,
 * -EINVAL with a message in err[0 .. err_cap) naming the key or the byte offset and what was
 * expected (e.g. `"buckets"[3]: index -700 not above the previous -700`), or -ENOMEM. On
 * error h is empty and valid. */
int ww_hist_text_parse(const char *s, ww_hist_t *h, char *err, size_t err_cap);

#endif
