/* ww_le: fixed-width little-endian fields in byte buffers, whatever the host (the spool's
 * records and the request log's datagrams). */
#ifndef WW_LE_H
#define WW_LE_H

#include <stdint.h>
#include <string.h>

static inline void ww_put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline uint64_t ww_get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static inline void ww_put_le16(uint8_t *p, uint16_t v)
{
    ww_put_le(p, v, 2);
}
static inline void ww_put_le32(uint8_t *p, uint32_t v)
{
    ww_put_le(p, v, 4);
}
static inline void ww_put_le64(uint8_t *p, uint64_t v)
{
    ww_put_le(p, v, 8);
}
static inline uint16_t ww_get_le16(const uint8_t *p)
{
    return (uint16_t)ww_get_le(p, 2);
}
static inline uint32_t ww_get_le32(const uint8_t *p)
{
    return (uint32_t)ww_get_le(p, 4);
}
static inline uint64_t ww_get_le64(const uint8_t *p)
{
    return ww_get_le(p, 8);
}

/* IEEE 754 binary32, as its bit pattern. */
static inline void ww_put_lef(uint8_t *p, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    ww_put_le32(p, v);
}

static inline float ww_get_lef(const uint8_t *p)
{
    uint32_t v = ww_get_le32(p);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

#endif
