/* ww_quant: see ww_quant.h. */
#include "ww_quant.h"

#include "ww_fields.h"
#include "ww_sblock.h"

/* One statement per field of ww_fields.h: F32 fields quantized, the others left alone. */
#define S_QUANT_F32(name) r->name = ww_sblock_quantize(r->name, WW_FIELD_RES(name));
#define S_QUANT_U32(name)
#define S_QUANT_BOOL(name)
#define S_QUANT_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)                      \
    WW_FIELD_CAT(S_QUANT_, kind)(name)

void ww_quant_reading(ww_reading_t *r)
{
    WW_READING_FIELDS(S_QUANT_)
}

void ww_quant_sample(ww_node_sample_t *s, const ww_reading_t *r)
{
    ww_reading_t q = *r;
    ww_quant_reading(&q);
    ww_wire_sample_from_reading(s, &q);
}
