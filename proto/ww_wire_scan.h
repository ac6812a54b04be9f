/* ww_wire_scan: one pass over the raw bytes of an Envelope before protobuf-c unpacks it.
 *
 * protobuf-c allocates every repeated field, sub-message and string it finds before the
 * caller sees any of it: a 16 MiB Envelope of 8.4 million empty samples costs over a
 * gigabyte and seconds of work before a limit of 65,536 samples can be checked on the
 * unpacked struct. The scanner walks the protobuf wire format (varint, fixed64,
 * length-delimited, fixed32) without allocating, recursing into the sub-messages the
 * Envelope schema declares (it reads the schema from protobuf-c's descriptors, so a field
 * added to the .proto is scanned with no change here), and refuses on the raw bytes:
 *  - a repeated field with more elements than its limit: batch.samples (max_samples),
 *    batch.latency_windows (max_windows), batch.outages (max_outages), hello.nodes
 *    (max_nodes), a histogram's index_delta and bucket_count (max_buckets each). The
 *    elements of an optional sub-message given more than once count together, as protobuf
 *    merges such occurrences. The scan stops at the first element past the limit;
 *  - a string field longer than max_string bytes, or holding a NUL byte (protobuf-c would
 *    cut it at the NUL silently: "site\0EVIL" would be read as "site");
 *  - malformed bytes: a varint longer than 10 bytes, a field or length past the end, a
 *    length-delimited field over 2 GiB, a group or unknown wire type, a known field with a
 *    wire type protobuf-c cannot read into it (bool excepted: protobuf-c reads any),
 *    a packed array cut mid-element, a field numbered 0 (which protobuf-c accepts as an
 *    unknown field though protobuf forbids it).
 * Unknown fields are skipped, not descended into (protobuf-c keeps them opaque).
 *
 * The stream position the Nack of a refused message needs (envelope.agent_id, epoch, seq)
 * is read on the way, from the last occurrence of each top-level field before the scan
 * stopped (protobuf's last-one-wins; a writer puts them before the body).
 */
#ifndef WW_WIRE_SCAN_H
#define WW_WIRE_SCAN_H

#include "ww_wire.h"

#include <stddef.h>
#include <stdint.h>

/* What the scan saw of the envelope's own fields. */
typedef struct {
    uint64_t epoch;          /* 0 when absent */
    uint64_t seq;            /* 0 when absent */
    const uint8_t *agent_id; /* into the scanned buffer; NULL when absent */
    size_t agent_id_len;     /* bytes, as sent (may hold a NUL: check before use) */
    size_t messages;         /* sub-messages scanned (repeated elements and singular ones) */
} ww_wire_scan_head_t;

/* Scans buf (len bytes) as an Envelope under lim. Never allocates. Fills *head (always,
 * with what was seen before the scan stopped) and returns 0; -EBADMSG when the bytes are
 * not protobuf protobuf-c could decode as an Envelope; -EINVAL when a limit or the NUL rule
 * is broken. why->msg names the field path, e.g. "batch.samples: more than the limit
 * 65536", "hello.nodes[0].site: a NUL byte at offset 4". why may be NULL; why's stream
 * position (have_seq...) is left to the caller. */
int ww_wire_scan(const uint8_t *buf, size_t len, const ww_wire_limits_t *lim,
                 ww_wire_scan_head_t *head, ww_wire_why_t *why);

#endif
