/* fuzz_config: libFuzzer target of ww_cfg_load_buffer(), the YAML configuration loader,
 * with the real schemas of both programs (ww_agent_schema and ww_collector_schema). Every
 * input is loaded with each schema over its defaults.
 *
 * Invariants checked (a violation traps):
 *  - a refusal returns -EINVAL or -ENOMEM with a reason that starts with the buffer's name;
 *  - an accepted configuration prints (ww_cfg_print, as --print-config does), the printed
 *    text loads back over the defaults, and prints again to the very same text;
 *  - for the agent, ww_agent_conf_finish() on a loaded configuration returns 0 or -EINVAL
 *    / -ENOMEM (with a reason), without crashing;
 *  - everything is freed (LeakSanitizer).
 */
#include "ww_agent_conf.h"
#include "ww_collector_conf.h"
#include "ww_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_config: invariant violated: %s (%s:%d)\n", #cond, __FILE__,      \
                    __LINE__);                                                                     \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

#define NAME "fuzz.yaml"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The configuration as --print-config writes it; NULL on out-of-memory. */
static char *s_print(const ww_cfg_schema_t *s, const void *cfg, size_t *len)
{
    char *text = NULL;
    *len = 0;
    FILE *f = open_memstream(&text, len);
    if (!f) {
        return NULL;
    }
    ww_cfg_print(s, cfg, f);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

static void s_one(const ww_cfg_schema_t *s, size_t conf_size, int agent, const uint8_t *data,
                  size_t size)
{
    void *cfg = calloc(1, conf_size);
    void *cfg2 = calloc(1, conf_size);
    char *p1 = NULL, *p2 = NULL;
    size_t n1 = 0, n2 = 0;
    ww_cfg_err_t err;
    if (!cfg || !cfg2) {
        goto cleanup;
    }
    CHECK(ww_cfg_defaults(s, cfg, &err) == 0);
    memset(&err, 0x5a, sizeof err);
    int rc = ww_cfg_load_buffer(s, cfg, (const char *)data, size, NAME, &err);
    if (rc < 0) {
        CHECK(rc == -EINVAL || rc == -ENOMEM);
        CHECK(memchr(err.msg, '\0', sizeof err.msg) != NULL);
        CHECK(strncmp(err.msg, NAME, strlen(NAME)) == 0);
    } else {
        CHECK(rc == 0);
    }

    /* Print, load the printed text back over the defaults, print again: same text. (Only
     * for accepted inputs: a refused one's values are each as valid, but printing them
     * too would halve the rate for little coverage.) */
    if (rc != 0) {
        goto cleanup;
    }
    p1 = s_print(s, cfg, &n1);
    if (!p1) {
        goto cleanup;
    }
    CHECK(ww_cfg_defaults(s, cfg2, &err) == 0);
    int rc2 = ww_cfg_load_buffer(s, cfg2, p1, n1, "printed", &err);
    if (rc2 == -ENOMEM) {
        goto cleanup;
    }
    if (rc2 != 0) {
        fprintf(stderr, "fuzz_config: %s: the printed configuration does not load back: %s\n%s",
                s->program, err.msg, p1);
    }
    CHECK(rc2 == 0);
    p2 = s_print(s, cfg2, &n2);
    if (!p2) {
        goto cleanup;
    }
    if (n1 != n2 || memcmp(p1, p2, n1) != 0) {
        fprintf(stderr, "fuzz_config: %s: printed twice differently:\n--- first\n%s--- second\n%s",
                s->program, p1, p2);
    }
    CHECK(n1 == n2 && memcmp(p1, p2, n1) == 0);

    if (agent) {
        err.msg[0] = '\0';
        int rf = ww_agent_conf_finish(cfg, &err);
        CHECK(rf == 0 || rf == -EINVAL || rf == -ENOMEM);
        CHECK(rf == 0 || rf == -ENOMEM || err.msg[0] != '\0');
    }

cleanup:
    if (cfg) {
        ww_cfg_free(s, cfg);
    }
    if (cfg2) {
        ww_cfg_free(s, cfg2);
    }
    free(cfg);
    free(cfg2);
    free(p1);
    free(p2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_one(&ww_agent_schema, sizeof(ww_agent_conf_t), 1, data, size);
    s_one(&ww_collector_schema, sizeof(ww_collector_conf_t), 0, data, size);
    return 0;
}
