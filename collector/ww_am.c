/* alertmanager: see ww_am.h. */
#include "ww_am.h"

#include "ww_buf.h"
#include "ww_version.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Appends s as a JSON string literal: quotes, backslashes and every control character
 * (< 0x20 and 0x7f) escaped. Bytes >= 0x80 pass through (UTF-8 text stays UTF-8). */
static void s_put_json_str(ww_buf_t *b, const char *s)
{
    ww_buf_put(b, "\"", 1);
    const char *run = s;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *esc = NULL;
        char hex[8];
        switch (*p) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                snprintf(hex, sizeof hex, "\\u%04x", *p);
                esc = hex;
            }
            break;
        }
        if (esc) {
            ww_buf_put(b, run, (size_t)((const char *)p - run));
            ww_buf_puts(b, esc);
            run = (const char *)p + 1;
        }
    }
    ww_buf_puts(b, run);
    ww_buf_put(b, "\"", 1);
}

/* Appends ,"key":"value" (or without the comma when first); NULL values are left out. */
static void s_member(ww_buf_t *b, bool *first, const char *key, const char *value)
{
    if (!value) {
        return;
    }
    if (!*first) {
        ww_buf_put(b, ",", 1);
    }
    *first = false;
    s_put_json_str(b, key);
    ww_buf_put(b, ":", 1);
    s_put_json_str(b, value);
}

/* RFC 3339 UTC with milliseconds, e.g. 2026-06-01T00:00:00.000Z. */
static void s_put_time(ww_buf_t *b, int64_t ns)
{
    int64_t sec = ns / 1000000000;
    int64_t rem = ns % 1000000000;
    if (rem < 0) {
        rem += 1000000000;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    char out[64];
    if (!gmtime_r(&t, &tm)) {
        memset(&tm, 0, sizeof tm);
        tm.tm_year = 70;
        tm.tm_mday = 1;
    }
    snprintf(out, sizeof out, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(rem / 1000000));
    ww_buf_puts(b, out);
}

/* The members of a JSON object text: what lies between its outer braces, trimmed. Sets
 * *n = 0 when the text is not {...} or the object is empty. */
static const char *s_object_inner(const char *obj, size_t *n)
{
    *n = 0;
    if (!obj) {
        return NULL;
    }
    const char *s = obj;
    const char *e = obj + strlen(obj);
    while (s < e && strchr(" \t\r\n", *s)) {
        s++;
    }
    while (e > s && strchr(" \t\r\n", e[-1])) {
        e--;
    }
    if (e - s < 2 || *s != '{' || e[-1] != '}') {
        return NULL;
    }
    s++;
    e--;
    while (s < e && strchr(" \t\r\n", *s)) {
        s++;
    }
    while (e > s && strchr(" \t\r\n", e[-1])) {
        e--;
    }
    *n = (size_t)(e - s);
    return s;
}

char *ww_am_json(const ww_am_alert_t *alerts, size_t n)
{
    ww_buf_t b = {0};
    ww_buf_put(&b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        const ww_am_alert_t *a = &alerts[i];
        bool first = true;
        ww_buf_puts(&b, i ? ",{\"labels\":{" : "{\"labels\":{");
        s_member(&b, &first, "alertname", a->alertname);
        s_member(&b, &first, "phase", a->phase);
        s_member(&b, &first, "model", a->model);
        s_member(&b, &first, "slo", a->slo);
        s_member(&b, &first, "severity", a->severity);
        ww_buf_puts(&b, "},\"annotations\":{");
        first = true;
        s_member(&b, &first, "summary", a->summary);
        s_member(&b, &first, "description", a->description);
        size_t xn;
        const char *x = s_object_inner(a->extra_annotations_json, &xn);
        if (xn > 0) {
            if (!first) {
                ww_buf_put(&b, ",", 1);
            }
            ww_buf_put(&b, x, xn);
        }
        ww_buf_puts(&b, "},\"startsAt\":");
        s_put_time(&b, a->starts_ns);
        if (a->ends_ns != 0) {
            ww_buf_puts(&b, ",\"endsAt\":");
            s_put_time(&b, a->ends_ns);
        }
        ww_buf_put(&b, "}", 1);
    }
    ww_buf_put(&b, "]", 1);
    return ww_buf_take(&b); /* NULL when out of memory */
}

static void s_why(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_why(char *why, size_t why_len, const char *fmt, ...)
{
    if (!why || why_len == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
}

/* Keeps the start of the response body for the error message. */
typedef struct {
    char text[256];
    size_t len;
} s_reply_t;

static size_t s_on_body(char *data, size_t size, size_t nmemb, void *user)
{
    s_reply_t *r = user;
    size_t n = size * nmemb;
    size_t room = sizeof r->text - 1 - r->len;
    size_t take = n < room ? n : room;
    memcpy(r->text + r->len, data, take);
    r->len += take;
    r->text[r->len] = '\0';
    return n;
}

static pthread_once_t s_curl_once = PTHREAD_ONCE_INIT;
static CURLcode s_curl_init_rc = CURLE_FAILED_INIT;

static void s_curl_init(void)
{
    s_curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int s_curl_errno(CURLcode c)
{
    switch (c) {
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
        return -EHOSTUNREACH;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return -EINVAL;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    default:
        return -EIO;
    }
}

int ww_am_post(const char *base_url, const ww_am_alert_t *alerts, size_t n, int64_t timeout_ns,
               char *why, size_t why_len)
{
    int rc = 0;
    char *body = NULL, *url = NULL;
    CURL *curl = NULL;
    struct curl_slist *headers = NULL;
    s_reply_t reply = {.len = 0};
    char cerr[CURL_ERROR_SIZE] = "";

    if (!base_url || !base_url[0]) {
        s_why(why, why_len, "no Alertmanager URL");
        return -EINVAL;
    }
    if (n == 0) {
        return 0;
    }
    pthread_once(&s_curl_once, s_curl_init);
    if (s_curl_init_rc != CURLE_OK) {
        s_why(why, why_len, "curl_global_init: %s", curl_easy_strerror(s_curl_init_rc));
        return -EIO;
    }
    size_t blen = strlen(base_url);
    while (blen > 0 && base_url[blen - 1] == '/') {
        blen--;
    }
    static const char path[] = "/api/v2/alerts";
    url = malloc(blen + sizeof path);
    body = ww_am_json(alerts, n);
    curl = curl_easy_init();
    headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (!url || !body || !curl || !headers) {
        s_why(why, why_len, "out of memory");
        rc = -ENOMEM;
        goto cleanup;
    }
    memcpy(url, base_url, blen);
    memcpy(url + blen, path, sizeof path);

    long timeout_ms = timeout_ns > 0 ? (long)(timeout_ns / 1000000) : 5000;
    if (timeout_ms < 1) {
        timeout_ms = 1;
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "waferwatch/" WW_VERSION);

    CURLcode c = curl_easy_perform(curl);
    if (c != CURLE_OK) {
        s_why(why, why_len, "%s: %s", url, cerr[0] ? cerr : curl_easy_strerror(c));
        rc = s_curl_errno(c);
        goto cleanup;
    }
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        /* Alertmanager answers errors as a JSON string or text; one line is enough. */
        for (size_t i = 0; i < reply.len; i++) {
            if (reply.text[i] == '\n' || reply.text[i] == '\r') {
                reply.text[i] = ' ';
            }
        }
        s_why(why, why_len, "HTTP %ld: %s", status, reply.len ? reply.text : "(empty body)");
        rc = -EIO;
    }

cleanup:
    curl_slist_free_all(headers);
    if (curl) {
        curl_easy_cleanup(curl);
    }
    free(body);
    free(url);
    return rc;
}
