/* harness_http: see harness_http.h. */
#include "harness_http.h"

#include "harness.h"
#include "ww_test.h"

#include <curl/curl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    char *data;
    size_t len;
} s_body_t;

/* libcurl's write callback: appends to the body, kept NUL-terminated. Returning less than
 * it was given (out of memory) makes curl abort the transfer. */
static size_t s_collect(char *ptr, size_t size, size_t n, void *arg)
{
    s_body_t *b = arg;
    char *nd = realloc(b->data, b->len + size * n + 1);
    if (!nd) {
        return 0;
    }
    b->data = nd;
    memcpy(b->data + b->len, ptr, size * n);
    b->len += size * n;
    b->data[b->len] = '\0';
    return size * n;
}

/* Performs the request set up on c into b (the body, 5 s at most); sets *status (0: no
 * answer) and, when ctype is given, copies the Content-Type. Cleans c up. */
static void s_perform(CURL *c, s_body_t *b, long *status, char *ctype, size_t ctype_cap)
{
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
    *status = 0;
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        char *ct = NULL;
        if (ctype && curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK) {
            snprintf(ctype, ctype_cap, "%s", ct ? ct : "");
        }
    }
    curl_easy_cleanup(c);
}

char *h_http_request(const char *method, const char *url, const char *post_fields, long *status,
                     char *ctype, size_t ctype_cap)
{
    CURL *c = curl_easy_init();
    assert_non_null(c);
    s_body_t b = {NULL, 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (method) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    if (post_fields) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post_fields);
    }
    s_perform(c, &b, status, ctype, ctype_cap);
    return b.data ? b.data : strdup("");
}

char *h_http_get(const char *url, long *status)
{
    return h_http_request(NULL, url, NULL, status, NULL, 0);
}

typedef struct {
    char *out;
    size_t cap;
} s_header_t;

/* libcurl's header callback: keeps the Retry-After value. */
static size_t s_header(char *ptr, size_t size, size_t n, void *arg)
{
    s_header_t *h = arg;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (h->out && len > sizeof name - 1 && strncasecmp(ptr, name, sizeof name - 1) == 0) {
        size_t from = sizeof name - 1;
        while (from < len && ptr[from] == ' ') {
            from++;
        }
        size_t to = len;
        while (to > from && (ptr[to - 1] == '\r' || ptr[to - 1] == '\n')) {
            to--;
        }
        snprintf(h->out, h->cap, "%.*s", (int)(to - from), ptr + from);
    }
    return len;
}

char *h_http_post(const char *url, const void *body, size_t len, const char *const *headers,
                  long *status, size_t *out_len, char *retry_after, size_t retry_after_cap)
{
    CURL *c = curl_easy_init();
    assert_non_null(c);
    s_body_t b = {NULL, 0};
    s_header_t h = {retry_after, retry_after_cap};
    if (retry_after) {
        retry_after[0] = '\0';
    }
    struct curl_slist *list = NULL;
    for (size_t i = 0; headers && headers[i]; i++) {
        list = curl_slist_append(list, headers[i]);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, s_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    s_perform(c, &b, status, NULL, 0);
    curl_slist_free_all(list);
    *out_len = b.len;
    return b.data ? b.data : strdup("");
}

double h_metrics_get(int port, const char *series)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    long code = 0;
    char *body = h_http_get(url, &code);
    if (code != 200) {
        fail_msg("GET %s: HTTP %ld", url, code);
    }
    double v = h_metrics_value(body, series);
    free(body);
    return v;
}

int h_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

pid_t h_alertmanager_start(const char *dir, int port, char *url, size_t cap)
{
    char cfg[256], storage[256], listen[64], log[256], cfgarg[300];
    snprintf(cfg, sizeof cfg, "%s/alertmanager.yml", dir);
    snprintf(storage, sizeof storage, "--storage.path=%s/am-data", dir);
    snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%d", port);
    snprintf(log, sizeof log, "%s/alertmanager.log", dir);
    snprintf(cfgarg, sizeof cfgarg, "--config.file=%s", cfg);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fputs("route:\n  receiver: \"null\"\n  group_wait: 1s\nreceivers:\n  - name: \"null\"\n", f);
    fclose(f);
    char *argv[] = {(char *)"/usr/bin/prometheus-alertmanager", cfgarg, storage, listen,
                    (char *)"--cluster.listen-address=",        NULL};
    pid_t pid = h_spawn(argv, log);
    snprintf(url, cap, "http://127.0.0.1:%d", port);
    char ready[128];
    snprintf(ready, sizeof ready, "%s/-/ready", url);
    for (int i = 0; i < 300; i++) {
        long code;
        free(h_http_get(ready, &code));
        if (code == 200) {
            return pid;
        }
        h_sleep_ms(50);
    }
    char *text = h_read_file(log);
    fail_msg("Alertmanager did not become ready:\n%s", text ? text : "");
    return -1;
}
