/*
 * smarty-emulator: the counters of /_emulator/stats and the last request
 * of /_emulator/last, which the endpoints write and control.c reads.
 */

#include <pthread.h>
#include <string.h>

#include "emu.h"


static pthread_mutex_t  emu_stats_lock = PTHREAD_MUTEX_INITIALIZER;

static struct {
    json_int_t   requests_total;
    json_int_t   requests;
    json_int_t   images;
    json_int_t   fail_5xx;
    json_int_t   temp_error;
    json_int_t   hang;
    json_int_t   reset;
    json_int_t   token_fail;
    json_int_t   token_hang;
    json_t      *by_path;
    json_t      *last;
} emu_stats;


void
emu_stats_request_total(void)
{
    pthread_mutex_lock(&emu_stats_lock);
    emu_stats.requests_total++;
    pthread_mutex_unlock(&emu_stats_lock);
}


void
emu_stats_request(const char *path)
{
    json_t  *n;

    pthread_mutex_lock(&emu_stats_lock);

    emu_stats.requests++;

    if (emu_stats.by_path == NULL) {
        emu_stats.by_path = json_object();
    }

    n = json_object_get(emu_stats.by_path, path);
    json_object_set_new(emu_stats.by_path, path,
                        json_integer(json_integer_value(n) + 1));

    pthread_mutex_unlock(&emu_stats_lock);
}


void
emu_stats_images(size_t n)
{
    pthread_mutex_lock(&emu_stats_lock);
    emu_stats.images += n;
    pthread_mutex_unlock(&emu_stats_lock);
}


void
emu_stats_fault(const char *which)
{
    pthread_mutex_lock(&emu_stats_lock);

    if (strcmp(which, "fail_5xx") == 0) {
        emu_stats.fail_5xx++;

    } else if (strcmp(which, "temp_error") == 0) {
        emu_stats.temp_error++;

    } else if (strcmp(which, "hang") == 0) {
        emu_stats.hang++;

    } else if (strcmp(which, "token_fail") == 0) {
        emu_stats.token_fail++;

    } else if (strcmp(which, "token_hang") == 0) {
        emu_stats.token_hang++;

    } else {
        emu_stats.reset++;
    }

    pthread_mutex_unlock(&emu_stats_lock);
}


/* takes the reference */
void
emu_last_set(json_t *last)
{
    json_t  *old;

    pthread_mutex_lock(&emu_stats_lock);
    old = emu_stats.last;
    emu_stats.last = last;
    pthread_mutex_unlock(&emu_stats_lock);

    json_decref(old);
}


/* the answer of /_emulator/stats, with the token endpoint's counters */
json_t *
emu_stats_json(const emu_token_stats_t *ts)
{
    json_t  *j, *by_path;

    pthread_mutex_lock(&emu_stats_lock);

    /* a copy, so that the answer does not share the live object */
    by_path = emu_stats.by_path ? json_deep_copy(emu_stats.by_path)
                                : json_object();

    j = json_pack("{s:I,s:I,s:I,s:o,s:I,s:{s:I,s:I,s:I,s:I,s:I},"
                  "s:{s:I,s:I,s:I,s:I,s:I,s:I}}",
                  "requests", emu_stats.requests,
                  "requests_total", emu_stats.requests_total,
                  "images", emu_stats.images,
                  "by_path", by_path,
                  "tokens_issued", ts->issued,
                  "tokens",
                  "issued", ts->issued,
                  "refreshed", ts->refreshed,
                  "active", ts->active,
                  "max_active", ts->max_active,
                  "refused", ts->refused,
                  "faults",
                  "fail_5xx", emu_stats.fail_5xx,
                  "temp_error", emu_stats.temp_error,
                  "hang", emu_stats.hang,
                  "reset", emu_stats.reset,
                  "token_fail", emu_stats.token_fail,
                  "token_hang", emu_stats.token_hang);

    pthread_mutex_unlock(&emu_stats_lock);

    return j;
}


void
emu_stats_clear(void)
{
    json_t  *by_path, *last;

    pthread_mutex_lock(&emu_stats_lock);

    by_path = emu_stats.by_path;
    last = emu_stats.last;
    memset(&emu_stats, 0, sizeof(emu_stats));

    pthread_mutex_unlock(&emu_stats_lock);

    json_decref(by_path);
    json_decref(last);
}


/* a copy of the last request to /api/v1/, or {} */
json_t *
emu_last_get(void)
{
    json_t  *last;

    pthread_mutex_lock(&emu_stats_lock);
    last = emu_stats.last ? json_deep_copy(emu_stats.last)
                          : json_object();
    pthread_mutex_unlock(&emu_stats_lock);

    return last;
}
