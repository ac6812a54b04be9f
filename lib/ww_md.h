/* ww_md: the two Markdown writers the generated references share (docs/reference/ pages:
 * the settings from lib/ww_config, the metrics from lib/ww_metrics). Both are safe in a
 * GFM table cell: a '|' is escaped and a newline becomes a space. */
#ifndef WW_MD_H
#define WW_MD_H

#include <stdio.h>

/* Text with the characters Markdown would read as markup (\ ` * _ [ ] < > |) escaped. */
void ww_md_text(FILE *out, const char *text);

/* A code span; a '|' inside is escaped (GFM tables require it). A backtick, which no
 * name, value or flag written here holds, would end the span. */
void ww_md_code(FILE *out, const char *text);

#endif
