/* harness_http: see harness_http.h. */
#include "harness_http.h"

#include "ww_test.h"

#include <curl/curl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
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
    return b.data ? b.data : strdup("");
}

char *h_http_get(const char *url, long *status)
{
    return h_http_request(NULL, url, NULL, status, NULL, 0);
}
