/* ww_md: see ww_md.h. */
#include "ww_md.h"

#include <string.h>

void ww_md_text(FILE *out, const char *text)
{
    for (const char *p = text; *p; p++) {
        if (*p == '\n') {
            fputc(' ', out);
            continue;
        }
        if (strchr("\\`*_[]<>|", *p)) {
            fputc('\\', out);
        }
        fputc(*p, out);
    }
}

void ww_md_code(FILE *out, const char *text)
{
    fputc('`', out);
    for (const char *p = text; *p; p++) {
        if (*p == '|') {
            fputc('\\', out);
        }
        fputc(*p == '\n' ? ' ' : *p, out);
    }
    fputc('`', out);
}
