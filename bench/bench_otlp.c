/* bench_otlp: the exporter side of bench/otlp.sh. POSTs OTLP/HTTP protobuf exports of BATCH
 * vLLM-shaped request spans (tests/otlp_spans.h) to URL for SECONDS, paced at RATE spans/s
 * (0: as fast as one connection goes, each POST waiting for its answer as an SDK's exporter
 * does), on one kept-alive connection. Prints one line: spans sent and accepted, exports
 * answered 200 / 503 / otherwise, the rate achieved and this process's CPU.
 *
 *   bench_otlp URL RATE SECONDS BATCH [metrics]
 *
 * With `metrics` an export is BATCH data points of the GenAI latency metrics instead (POST
 * /v1/metrics): delta exponential histograms of TTFT, TPOT and request duration in turn, the
 * three models in turn, each point 64 buckets at scale 6 holding 1 to 64 values (an SDK's
 * point is at most 160 buckets); "spans" in the line are then points.
 */
#include "otlp/otlp_metrics.pb-c.h"
#include "otlp_spans.h"
#include "ww_hist.h"
#include "ww_time.h"

#include <curl/curl.h>

#include <stdbool.h>
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

enum { S_BUCKETS = 64 };

/* One metrics export of n delta points ending now (k: the running point number). */
static uint8_t *s_metrics_export(size_t n, uint64_t k, size_t *len)
{
    static const char *const names[] = {"gen_ai.server.time_to_first_token",
                                        "gen_ai.server.time_per_output_token",
                                        "gen_ai.server.request.duration"};
    static const int32_t offsets[] = {-300, -560, 0}; /* ~40 ms, ~2 ms, ~1 s */
    uint64_t now = (uint64_t)ww_time_now_ns() - 50 * WW_NS_PER_MS;
    Ww__Otlp__V1__AnyValue *vals = calloc(n, sizeof *vals);
    Ww__Otlp__V1__KeyValue *kvs = calloc(n, sizeof *kvs), **kvp = calloc(n, sizeof *kvp);
    Ww__Otlp__V1__ExponentialHistogramDataPoint *pts = calloc(n, sizeof *pts);
    Ww__Otlp__V1__ExponentialHistogramDataPoint__Buckets *bs = calloc(n, sizeof *bs);
    uint64_t *counts = calloc(n * S_BUCKETS, sizeof *counts);
    Ww__Otlp__V1__ExponentialHistogram eh[3];
    Ww__Otlp__V1__Metric m[3], *mp[3];
    size_t per[3] = {0, 0, 0};
    Ww__Otlp__V1__ExponentialHistogramDataPoint **by[3];
    for (int j = 0; j < 3; j++) {
        by[j] = calloc(n, sizeof *by[j]);
    }
    uint8_t *out = NULL;
    if (!vals || !kvs || !kvp || !pts || !bs || !counts || !by[0] || !by[1] || !by[2]) {
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t q = k + i;
        ww__otlp__v1__any_value__init(&vals[i]);
        vals[i].value_case = WW__OTLP__V1__ANY_VALUE__VALUE_STRING_VALUE;
        const char *model = s_models[q % 3];
        vals[i].string_value = (ProtobufCBinaryData){strlen(model), (uint8_t *)model};
        ww__otlp__v1__key_value__init(&kvs[i]);
        kvs[i].key = (ProtobufCBinaryData){21, (uint8_t *)"gen_ai.response.model"};
        kvs[i].value = &vals[i];
        kvp[i] = &kvs[i];
        int j = (int)((q / 3) % 3);
        ww__otlp__v1__exponential_histogram_data_point__buckets__init(&bs[i]);
        bs[i].offset = offsets[j];
        bs[i].n_bucket_counts = S_BUCKETS;
        bs[i].bucket_counts = counts + i * S_BUCKETS;
        uint64_t total = 0;
        double sum = 0;
        for (int b = 0; b < S_BUCKETS; b++) {
            uint64_t c = 1 + (q + (uint64_t)b) % 64;
            bs[i].bucket_counts[b] = c;
            total += c;
            sum += (double)c * ww_hist_upper(offsets[j] + b, 6);
        }
        ww__otlp__v1__exponential_histogram_data_point__init(&pts[i]);
        pts[i].attributes = &kvp[i];
        pts[i].n_attributes = 1;
        pts[i].start_time_unix_nano = now - WW_NS_PER_S;
        pts[i].time_unix_nano = now;
        pts[i].count = total;
        pts[i].sum_present_case = WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__SUM_PRESENT_SUM;
        pts[i].sum = sum;
        pts[i].scale = 6;
        pts[i].positive = &bs[i];
        pts[i].min_present_case = WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__MIN_PRESENT_MIN;
        pts[i].min = ww_hist_upper(offsets[j], 6);
        pts[i].max_present_case = WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__MAX_PRESENT_MAX;
        pts[i].max = ww_hist_upper(offsets[j] + S_BUCKETS - 1, 6);
        by[j][per[j]++] = &pts[i];
    }
    for (int j = 0; j < 3; j++) {
        ww__otlp__v1__exponential_histogram__init(&eh[j]);
        eh[j].aggregation_temporality = 1;
        eh[j].data_points = by[j];
        eh[j].n_data_points = per[j];
        ww__otlp__v1__metric__init(&m[j]);
        m[j].name = (ProtobufCBinaryData){strlen(names[j]), (uint8_t *)names[j]};
        m[j].data_case = WW__OTLP__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM;
        m[j].exponential_histogram = &eh[j];
        mp[j] = &m[j];
    }
    Ww__Otlp__V1__ScopeMetrics sm = WW__OTLP__V1__SCOPE_METRICS__INIT;
    sm.metrics = mp;
    sm.n_metrics = 3;
    Ww__Otlp__V1__ScopeMetrics *smp = &sm;
    Ww__Otlp__V1__ResourceMetrics rm = WW__OTLP__V1__RESOURCE_METRICS__INIT;
    rm.scope_metrics = &smp;
    rm.n_scope_metrics = 1;
    Ww__Otlp__V1__ResourceMetrics *rmp = &rm;
    Ww__Otlp__V1__ExportMetricsServiceRequest req =
        WW__OTLP__V1__EXPORT_METRICS_SERVICE_REQUEST__INIT;
    req.resource_metrics = &rmp;
    req.n_resource_metrics = 1;
    *len = ww__otlp__v1__export_metrics_service_request__get_packed_size(&req);
    if ((out = malloc(*len ? *len : 1)) != NULL) {
        ww__otlp__v1__export_metrics_service_request__pack(&req, out);
    }
done:
    free(vals);
    free(kvs);
    free(kvp);
    free(pts);
    free(bs);
    free(counts);
    for (int j = 0; j < 3; j++) {
        free(by[j]);
    }
    return out;
}

int main(int argc, char **argv)
{
    if (argc != 5 && !(argc == 6 && strcmp(argv[5], "metrics") == 0)) {
        fprintf(stderr, "usage: bench_otlp URL RATE SECONDS BATCH [metrics]\n");
        return 2;
    }
    bool metrics = argc == 6;
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
        uint8_t *body =
            metrics ? s_metrics_export(batch, sent, &len) : s_export(spans, batch, sent, &len);
        if (!body) {
            fprintf(stderr, "bench_otlp: out of memory\n");
            return 1;
        }
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
