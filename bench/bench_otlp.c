/* bench_otlp: the exporter side of bench/otlp.sh. POSTs OTLP/HTTP protobuf exports of BATCH
 * vLLM-shaped request spans (tests/otlp_spans.h) to URL for SECONDS, paced at RATE spans/s
 * (0: as fast as one connection goes, each POST waiting for its answer as an SDK's exporter
 * does), on one kept-alive connection. Prints one line: spans sent and accepted, exports
 * answered 200 / 503 / otherwise, the rate achieved and this process's CPU.
 *
 *   bench_otlp URL RATE SECONDS BATCH
 */
#include "otlp_spans.h"
#include "ww_time.h"

#include <curl/curl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static const char *const s_models[] = {"llama3.1-8b", "llama3.1-70b", "llama3.1-405b"};

static size_t s_discard(char *ptr, size_t size, size_t n, void *arg)
{
    (void)ptr;
    (void)arg;
    return size * n;
}

/* One export of n spans ending now (values vary with k, the running span number). */
static uint8_t *s_export(h_otlp_span_t *spans, size_t n, uint64_t k, size_t *len)
{
    uint64_t end = (uint64_t)ww_time_now_ns() - 50 * WW_NS_PER_MS;
    for (size_t i = 0; i < n; i++) {
        double ttft = 0.05 + 0.0001 * (double)((k + i) % 1000);
        h_otlp_vllm(&spans[i], end + i, s_models[(k + i) % 3], ttft + 0.5, ttft, 0.01, 100, 50);
    }
    return h_otlp_pack(spans, n, len);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: bench_otlp URL RATE SECONDS BATCH\n");
        return 2;
    }
    const char *url = argv[1];
    double rate = atof(argv[2]), seconds = atof(argv[3]);
    size_t batch = (size_t)atol(argv[4]);
    if (seconds <= 0 || batch == 0 || rate < 0) {
        fprintf(stderr, "bench_otlp: SECONDS and BATCH must be positive, RATE >= 0\n");
        return 2;
    }
    h_otlp_span_t *spans = calloc(batch, sizeof *spans);
    CURL *c = curl_easy_init();
    if (!spans || !c) {
        fprintf(stderr, "bench_otlp: out of memory\n");
        return 1;
    }
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/x-protobuf");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    uint64_t sent = 0, accepted = 0, ok = 0, busy = 0, other = 0;
    int64_t t0 = ww_time_mono_ns(), end = t0 + (int64_t)(seconds * 1e9);
    for (uint64_t i = 0;; i++) {
        int64_t due = rate > 0 ? t0 + (int64_t)((double)(i * batch) / rate * 1e9) : 0;
        int64_t now = ww_time_mono_ns();
        if (now >= end || due >= end) {
            break;
        }
        if (due > now) {
            struct timespec ts = {(time_t)((due - now) / WW_NS_PER_S),
                                  (long)((due - now) % WW_NS_PER_S)};
            nanosleep(&ts, NULL);
        }
        size_t len;
        uint8_t *body = s_export(spans, batch, sent, &len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        long status = 0;
        if (curl_easy_perform(c) == CURLE_OK) {
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        }
        free(body);
        sent += batch;
        if (status == 200) {
            ok++;
            accepted += batch;
        } else if (status == 503) {
            busy++;
        } else {
            other++;
        }
    }
    double el = (double)(ww_time_mono_ns() - t0) / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    printf("bench_otlp: sent=%llu accepted=%llu exports_200=%llu exports_503=%llu "
           "exports_other=%llu seconds=%.2f accepted_per_s=%.0f cpu_s=%.2f\n",
           (unsigned long long)sent, (unsigned long long)accepted, (unsigned long long)ok,
           (unsigned long long)busy, (unsigned long long)other, el, (double)accepted / el, cpu);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(spans);
    return other > 0 ? 1 : 0;
}
