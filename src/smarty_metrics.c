/*
 * smarty-gateway: the metrics' buckets and Prometheus's text format (see
 * smarty_metrics.h, docs/metrics.md).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smarty_metrics.h"


static int smarty_buf_room(smarty_buf_t *b, size_t n);


const uint64_t  smarty_metrics_bounds_ms[SMARTY_METRICS_NBOUNDS] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000
};


size_t
smarty_metrics_bucket(uint64_t ms)
{
    size_t  lo, hi, mid;

    /* the first bound >= ms */

    lo = 0;
    hi = SMARTY_METRICS_NBOUNDS;

    while (lo < hi) {
        mid = (lo + hi) / 2;

        if (smarty_metrics_bounds_ms[mid] < ms) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    return lo;
}


/* --- the buffer ---------------------------------------------------------- */


void
smarty_buf_init(smarty_buf_t *b)
{
    memset(b, 0, sizeof(smarty_buf_t));
}


void
smarty_buf_free(smarty_buf_t *b)
{
    free(b->data);
    smarty_buf_init(b);
}


static int
smarty_buf_room(smarty_buf_t *b, size_t n)
{
    char    *p;
    size_t   cap;

    if (b->failed) {
        return -1;
    }

    if (b->len + n + 1 <= b->cap) {
        return 0;
    }

    cap = b->cap ? b->cap : 4096;

    while (cap < b->len + n + 1) {
        cap *= 2;
    }

    p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = 1;
        return -1;
    }

    b->data = p;
    b->cap = cap;

    return 0;
}


void
smarty_buf_add(smarty_buf_t *b, const char *s, size_t len)
{
    if (smarty_buf_room(b, len) != 0) {
        return;
    }

    memcpy(b->data + b->len, s, len);
    b->len += len;
    b->data[b->len] = '\0';
}


void
smarty_buf_printf(smarty_buf_t *b, const char *fmt, ...)
{
    int      n;
    va_list  args;

    va_start(args, fmt);
    n = vsnprintf(NULL, 0, fmt, args);
    va_end(args);

    if (n < 0 || smarty_buf_room(b, (size_t) n) != 0) {
        return;
    }

    va_start(args, fmt);
    (void) vsnprintf(b->data + b->len, (size_t) n + 1, fmt, args);
    va_end(args);

    b->len += (size_t) n;
}


/* --- Prometheus's text format -------------------------------------------- */


void
smarty_prom_family(smarty_buf_t *b, const char *name, const char *type,
    const char *help)
{
    smarty_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                      type);
}


void
smarty_prom_label(smarty_buf_t *b, const char *v, size_t len)
{
    size_t  i, start;

    start = 0;

    for (i = 0; i < len; i++) {
        if (v[i] != '\\' && v[i] != '"' && v[i] != '\n') {
            continue;
        }

        smarty_buf_add(b, v + start, i - start);
        smarty_buf_add(b, v[i] == '\n' ? "\\n" : (v[i] == '"' ? "\\\""
                                                             : "\\\\"), 2);
        start = i + 1;
    }

    smarty_buf_add(b, v + start, len - start);
}


void
smarty_prom_sample(smarty_buf_t *b, const char *name, const char *labels,
    uint64_t value)
{
    if (labels != NULL && labels[0] != '\0') {
        smarty_buf_printf(b, "%s{%s} %llu\n", name, labels,
                          (unsigned long long) value);
        return;
    }

    smarty_buf_printf(b, "%s %llu\n", name, (unsigned long long) value);
}


void
smarty_prom_seconds(smarty_buf_t *b, const char *name, const char *labels,
    int64_t ms)
{
    const char  *sign;

    sign = (ms < 0) ? "-" : "";
    ms = (ms < 0) ? -ms : ms;

    if (labels != NULL && labels[0] != '\0') {
        smarty_buf_printf(b, "%s{%s} %s%lld.%03d\n", name, labels, sign,
                          (long long) (ms / 1000), (int) (ms % 1000));
        return;
    }

    smarty_buf_printf(b, "%s %s%lld.%03d\n", name, sign,
                      (long long) (ms / 1000), (int) (ms % 1000));
}


void
smarty_prom_histogram(smarty_buf_t *b, const char *name, const char *labels,
    const uint64_t counts[SMARTY_METRICS_NBUCKETS], uint64_t sum_ms)
{
    size_t       i;
    uint64_t     total, ms;
    const char  *sep;

    sep = (labels != NULL && labels[0] != '\0') ? "," : "";
    labels = (labels != NULL) ? labels : "";

    total = 0;

    for (i = 0; i < SMARTY_METRICS_NBUCKETS; i++) {
        total += counts[i];

        if (i == SMARTY_METRICS_NBOUNDS) {
            smarty_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name,
                              labels, sep, (unsigned long long) total);
            break;
        }

        ms = smarty_metrics_bounds_ms[i];

        smarty_buf_printf(b, "%s_bucket{%s%sle=\"%llu.%03u\"} %llu\n", name,
                          labels, sep, (unsigned long long) (ms / 1000),
                          (unsigned) (ms % 1000), (unsigned long long) total);
    }

    smarty_buf_printf(b, "%s_sum%s%s%s %llu.%03u\n", name,
                      labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
                      (unsigned long long) (sum_ms / 1000),
                      (unsigned) (sum_ms % 1000));
    smarty_buf_printf(b, "%s_count%s%s%s %llu\n", name,
                      labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
                      (unsigned long long) total);
}
