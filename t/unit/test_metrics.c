/*
 * smarty-gateway: unit tests of the metrics' arithmetic and text (TAP):
 * buckets at and around their bounds, label escaping, histograms in
 * Prometheus's text format.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smarty_metrics.h"
#include "tap.h"


static void
test_buckets(void)
{
    size_t  i;
    int     good;

    is_int((int) smarty_metrics_bucket(0), 0, "0 ms: the first bucket");
    is_int((int) smarty_metrics_bucket(1), 0, "1 ms: le 0.001");
    is_int((int) smarty_metrics_bucket(2), 1, "2 ms: le 0.002");
    is_int((int) smarty_metrics_bucket(3), 2, "3 ms: le 0.005");
    is_int((int) smarty_metrics_bucket(30000), SMARTY_METRICS_NBOUNDS - 1,
           "30 s: the last bound");
    is_int((int) smarty_metrics_bucket(30001), SMARTY_METRICS_NBOUNDS,
           "above: +Inf");
    is_int((int) smarty_metrics_bucket((uint64_t) -1),
           SMARTY_METRICS_NBOUNDS, "the largest value: +Inf");

    good = 1;

    for (i = 0; i < SMARTY_METRICS_NBOUNDS; i++) {
        if (smarty_metrics_bucket(smarty_metrics_bounds_ms[i]) != i
            || smarty_metrics_bucket(smarty_metrics_bounds_ms[i] + 1)
               != i + 1)
        {
            good = 0;
        }

        if (i && smarty_metrics_bounds_ms[i] <= smarty_metrics_bounds_ms[i - 1])
        {
            good = 0;
        }
    }

    ok(good, "every bound is in its bucket, one more is in the next");
}


static void
test_text(void)
{
    smarty_buf_t  b;
    uint64_t      counts[SMARTY_METRICS_NBUCKETS];

    smarty_buf_init(&b);

    smarty_prom_family(&b, "smarty_x_total", "counter", "Things.");
    is_str(b.data, "# HELP smarty_x_total Things.\n"
                   "# TYPE smarty_x_total counter\n", "family");
    b.len = 0;

    smarty_buf_add(&b, "client=\"", 8);
    smarty_prom_label(&b, "a\"b\\c\nd", 7);
    smarty_buf_add(&b, "\"", 1);
    is_str(b.data, "client=\"a\\\"b\\\\c\\nd\"", "label escaped");
    b.len = 0;

    smarty_prom_sample(&b, "smarty_x_total", "a=\"1\"", 42);
    smarty_prom_sample(&b, "smarty_y", NULL, 0);
    is_str(b.data, "smarty_x_total{a=\"1\"} 42\nsmarty_y 0\n", "samples");
    b.len = 0;

    smarty_prom_seconds(&b, "smarty_age_seconds", "", 61234);
    smarty_prom_seconds(&b, "smarty_age_seconds", "x=\"y\"", -5);
    is_str(b.data, "smarty_age_seconds 61.234\n"
                   "smarty_age_seconds{x=\"y\"} -0.005\n", "seconds");
    b.len = 0;

    memset(counts, 0, sizeof(counts));
    counts[0] = 2;
    counts[2] = 1;
    counts[SMARTY_METRICS_NBOUNDS] = 1;

    smarty_prom_histogram(&b, "smarty_d_seconds", "method=\"m\"", counts,
                          40004);
    ok(strstr(b.data, "smarty_d_seconds_bucket{method=\"m\",le=\"0.001\"} 2\n")
       != NULL, "first bucket");
    ok(strstr(b.data, "smarty_d_seconds_bucket{method=\"m\",le=\"0.002\"} 2\n")
       != NULL, "cumulative: the second holds the first");
    ok(strstr(b.data, "smarty_d_seconds_bucket{method=\"m\",le=\"0.005\"} 3\n")
       != NULL, "third");
    ok(strstr(b.data, "smarty_d_seconds_bucket{method=\"m\",le=\"30.000\"} 3\n")
       != NULL, "the last bound");
    ok(strstr(b.data, "smarty_d_seconds_bucket{method=\"m\",le=\"+Inf\"} 4\n")
       != NULL, "+Inf holds all");
    ok(strstr(b.data, "smarty_d_seconds_sum{method=\"m\"} 40.004\n") != NULL,
       "sum in seconds");
    ok(strstr(b.data, "smarty_d_seconds_count{method=\"m\"} 4\n") != NULL,
       "count");
    b.len = 0;

    smarty_prom_histogram(&b, "h", NULL, counts, 0);
    ok(strstr(b.data, "h_bucket{le=\"+Inf\"} 4\n") != NULL,
       "no labels: le alone");
    ok(strstr(b.data, "h_sum 0.000\nh_count 4\n") != NULL,
       "no labels: no braces");

    smarty_buf_free(&b);
    ok(b.data == NULL && b.len == 0, "freed");
}


int
main(void)
{
    test_buckets();
    test_text();

    return done_testing();
}
