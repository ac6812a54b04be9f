/* ww_otlp_pb: see ww_otlp_pb.h. */
#include "ww_otlp_pb.h"

#include "ww_wire.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *ww_otlp_pb_alloc(void *oom_flag, size_t size)
{
    void *p = malloc(size);
    if (!p) {
        *(bool *)oom_flag = true;
    }
    return p;
}

void ww_otlp_pb_free(void *oom_flag, void *p)
{
    (void)oom_flag;
    free(p);
}

const Ww__Otlp__V1__AnyValue *ww_otlp_pb_attr(Ww__Otlp__V1__KeyValue *const *attrs, size_t n,
                                              const char *key)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < n; i++) {
        if (klen > 0 && attrs[i]->key.len == klen && memcmp(attrs[i]->key.data, key, klen) == 0) {
            return attrs[i]->value;
        }
    }
    return NULL;
}

int ww_otlp_pb_attr_text(Ww__Otlp__V1__KeyValue *const *attrs, size_t n, const char *key, char *dst,
                         size_t cap)
{
    const Ww__Otlp__V1__AnyValue *v = ww_otlp_pb_attr(attrs, n, key);
    if (!v || v->value_case != WW__OTLP__V1__ANY_VALUE__VALUE_STRING_VALUE) {
        return 0;
    }
    const ProtobufCBinaryData *s = &v->string_value;
    if (s->len == 0 || s->len >= cap || !ww_wire_text_ok((const char *)s->data, s->len)) {
        return -1;
    }
    memcpy(dst, s->data, s->len);
    dst[s->len] = '\0';
    return 1;
}

void ww_otlp_pb_why(char *why, size_t cap, const char *fmt, ...)
{
    if (why[0]) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
}
