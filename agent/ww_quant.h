/* ww_quant: every reading the agent sends, on its sensor's grid.
 *
 * A source fills a ww_reading_t with what it measured or was told (the simulator's doubles
 * cast to float, the request log's f32 as the producer sent them): 23,000.37 W, 25.0431 C.
 * No sensor resolves those digits, and they cost storage: after a few hours the collector
 * rewrites raw rows into sample blocks (lib/ww_sblock.h), which store a reading on its
 * field's grid as a small delta of its grid index (~1 B) and any other value whole (~4 B).
 * So the agent rounds each F32 reading to the documented resolution of its field
 * (WW_FIELD_RES_<name> in proto/ww_fields.h: 1 W, 0.1 C, 0.1 l/min, 0.001 of utilisation,
 * ...) as the reading becomes the NodeSample it batches, spools and sends: one place that
 * every source passes through (agent_main.c's tick), expanded from the field list so that a
 * new field cannot be left out.
 *
 * The rounding is ww_sblock_quantize: the nearest grid value, k = llround(v / res) sent as
 * (float)((double)k * res), which is on the grid exactly as the block codec tests it
 * (ww_sblock_grid_index). What it leaves alone:
 *  - NaN (an OPTIONAL field not measured: humidity_pct stays NaN, so it stays absent from
 *    the NodeSample), +-inf, and values too large for the grid: returned as they are (the
 *    collector's range check refuses what is out of range, as before);
 *  - U32 and BOOL fields (counters, throttled): exact already.
 * A reading within a field's plausible range stays within it: the range bounds of ww_fields.h
 * are on the grid. -0.0 becomes +0.0.
 *
 * The collector does not quantize: it stores any plausible value it receives exactly (an
 * older agent's, another producer's). The resolution is a promise of this agent, not a
 * check of the wire.
 */
#ifndef WW_QUANT_H
#define WW_QUANT_H

#include "ww_reading.h"
#include "ww_wire.h"

/* Rounds every F32 reading of *r, in place, to its field's resolution (see above); U32 and
 * BOOL fields, NaN and +-inf are left as they are. */
void ww_quant_reading(ww_reading_t *r);

/* Fills the reading fields of *s from *r, each F32 reading quantized (ww_quant_reading of a
 * copy of *r, then ww_wire_sample_from_reading: a NaN OPTIONAL field is left unset); node_id
 * and time_ns are left alone. *r is not changed. What the agent sends for a reading. */
void ww_quant_sample(ww_node_sample_t *s, const ww_reading_t *r);

#endif
