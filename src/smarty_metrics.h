/*
 * smarty-gateway: the metrics' arithmetic and their text (pure C, no
 * nginx types): the latency histograms' buckets, Prometheus's text
 * exposition format (version 0.0.4) into a growing buffer
 * (docs/metrics.md).
 */

#ifndef SMARTY_METRICS_H
#define SMARTY_METRICS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>


/* the histograms' upper bounds, in milliseconds; then +Inf */
#define SMARTY_METRICS_NBOUNDS   14
#define SMARTY_METRICS_NBUCKETS  (SMARTY_METRICS_NBOUNDS + 1)

extern const uint64_t  smarty_metrics_bounds_ms[SMARTY_METRICS_NBOUNDS];


/* the bucket of an observation of ms milliseconds: 0 .. NBOUNDS (+Inf) */
size_t smarty_metrics_bucket(uint64_t ms);


/* a buffer that grows (malloc); failed once memory ran out */

typedef struct {
    char      *data;
    size_t     len;
    size_t     cap;
    int        failed;
} smarty_buf_t;

void smarty_buf_init(smarty_buf_t *b);
void smarty_buf_free(smarty_buf_t *b);
void smarty_buf_add(smarty_buf_t *b, const char *s, size_t len);
void smarty_buf_printf(smarty_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));


/* "# HELP name help" and "# TYPE name type" */
void smarty_prom_family(smarty_buf_t *b, const char *name, const char *type,
    const char *help);

/* a label value between its quotes: \, " and newline escaped */
void smarty_prom_label(smarty_buf_t *b, const char *v, size_t len);

/*
 * One sample: name{labels} value.  labels is the text between the
 * braces, already escaped ("" or NULL: no braces).
 */
void smarty_prom_sample(smarty_buf_t *b, const char *name,
    const char *labels, uint64_t value);

/* a sample of a value in seconds, from milliseconds */
void smarty_prom_seconds(smarty_buf_t *b, const char *name,
    const char *labels, int64_t ms);

/*
 * A histogram's samples: name_bucket{labels,le="..."} (cumulative),
 * name_sum{labels} in seconds, name_count{labels}.  counts holds each
 * bucket's own observations (the last one +Inf's), sum_ms their sum.
 */
void smarty_prom_histogram(smarty_buf_t *b, const char *name,
    const char *labels, const uint64_t counts[SMARTY_METRICS_NBUCKETS],
    uint64_t sum_ms);

#endif /* SMARTY_METRICS_H */
