/*
 * smarty: the requests of the batch commands.  The items are cut into
 * requests of at most job->max_images images and job->max_bytes bytes,
 * job->parallel of them in flight at once (libcurl multi).  A 429 holds
 * every new request until its Retry-After; a 413 halves the batches; a
 * 5xx, a transport failure and an image's status 2 are tried again with
 * exponential backoff and jitter, job->retries times.  Ctrl-C stops
 * sending, lets the requests in flight finish (a second one aborts them),
 * and says how to resume.
 */

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "smarty_batch.h"


#define SMARTY_ANSWER_MAX     (64 * 1024 * 1024)
#define SMARTY_USER_AGENT     "smarty-client/1.0"
#define SMARTY_BACKOFF_MAX    30.0      /* seconds */
#define SMARTY_WAIT_MAX       86400.0   /* the longest 429 wait, seconds */
#define SMARTY_TICK_MS        100
#define SMARTY_DRAW_EVERY     0.1       /* the terminal's progress line */


typedef struct {
    CURL           *h;
    curl_mime      *mime;
    smarty_buf_t    meta;
    smarty_buf_t    answer;
    size_t         *idx;            /* the items, in the parts' order */
    size_t          n;
    size_t          bytes;          /* what the batch was reckoned at */
    size_t          nr;             /* the request's number, from 1 */
    double          started;
    double          retry_after;    /* Retry-After, seconds; -1: none */
    char            cache[160];     /* Cache-Status */
    char            errbuf[CURL_ERROR_SIZE];
} smarty_req_t;


typedef struct {
    smarty_job_t       *job;
    CURLM              *multi;
    struct curl_slist  *headers;
    smarty_req_t      **reqs;       /* in flight: job->parallel slots */
    size_t              running;
    size_t             *retry;      /* items to send again, in order */
    size_t              nretry;
    size_t              next;       /* the first item never sent */
    size_t             *idx;        /* a batch being made */
    double              start;
    double              hold;       /* no new request before (a 429) */
    char                hold_code[64];
    double              window;     /* requests in flight at most: halved
                                       by a 429, then grows back by one
                                       per window answers */
    double              drawn;      /* when progress was last shown */
    int                 stopping;   /* 1: no new requests, 2: abort */
    int                 fatal;      /* the exit status that ends the run */
} smarty_run_t;


static volatile sig_atomic_t  smarty_signals;
static volatile sig_atomic_t  smarty_signo;


static void smarty_on_signal(int signo);
static void smarty_signals_check(smarty_run_t *run);
static size_t smarty_batch_take(smarty_run_t *run, double now,
    size_t *bytes);
static size_t smarty_item_cost(smarty_item_t *it);
static int smarty_req_start(smarty_run_t *run, size_t n, size_t bytes);
static void smarty_req_done(smarty_run_t *run, smarty_req_t *req,
    CURLcode cc);
static void smarty_req_answer(smarty_run_t *run, smarty_req_t *req,
    json_t *body, double now);
static void smarty_req_wait(smarty_run_t *run, smarty_req_t *req,
    json_t *body, const char *code, double now);
static void smarty_req_split(smarty_run_t *run, smarty_req_t *req,
    const char *error, const char *code);
static void smarty_req_retry(smarty_run_t *run, smarty_req_t *req,
    const char *error, const char *code, int transport, double now);
static void smarty_req_fail(smarty_run_t *run, smarty_req_t *req,
    int status, const char *error, const char *code);
static void smarty_req_free(smarty_run_t *run, smarty_req_t *req);
static void smarty_abort_all(smarty_run_t *run);
static void smarty_requeue(smarty_run_t *run, size_t i, double when);
static void smarty_item_temporary(smarty_run_t *run, size_t i,
    const char *error, const char *code, double now);
static void smarty_final(smarty_run_t *run, smarty_item_t *it, int status,
    const char *error, const char *code, json_t *persons,
    const char *cache);
static double smarty_delay(smarty_job_t *job, int attempts);
static const char *smarty_cache_word(smarty_req_t *req, size_t *hits);
static size_t smarty_header(char *p, size_t size, size_t n, void *ud);
static size_t smarty_body(char *p, size_t size, size_t n, void *ud);
static void smarty_progress(smarty_run_t *run, double now, int final);
static void smarty_summary(smarty_run_t *run, double now);
static void smarty_resume_hint(smarty_run_t *run);
static void smarty_shell_word(smarty_buf_t *b, const char *s);
static void smarty_say(smarty_run_t *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));


double
smarty_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


int
smarty_run(smarty_job_t *job)
{
    int                 rc, still;
    long                maxconn;
    size_t              i, n, bytes;
    double              now;
    CURLMsg            *msg;
    smarty_run_t        run;
    smarty_req_t       *req;
    smarty_buf_t        auth;
    struct sigaction    sa, old_int, old_term, old_pipe;
    struct curl_slist  *l;

    memset(&run, 0, sizeof(smarty_run_t));
    memset(&auth, 0, sizeof(smarty_buf_t));
    run.job = job;
    run.start = smarty_now();
    run.drawn = run.start;
    run.window = job->parallel;
    job->total = job->nitems - job->resumed;

    srandom((unsigned) time(NULL) ^ (unsigned) getpid());

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "smarty: cannot initialise libcurl\n");
        return SMARTY_EXIT_TRANSPORT;
    }

    run.multi = curl_multi_init();
    run.reqs = calloc(job->parallel, sizeof(smarty_req_t *));
    run.retry = malloc((job->nitems + 1) * sizeof(size_t));
    run.idx = malloc((SMARTY_BATCH_IMAGES + 1) * sizeof(size_t));

    l = curl_slist_append(NULL, "Accept: application/json");
    run.headers = l;

    if (l != NULL && job->key != NULL) {
        if (smarty_buf_printf(&auth, "Authorization: Bearer %s", job->key)
            == 0)
        {
            l = curl_slist_append(run.headers, auth.data);
            run.headers = l ? l : run.headers;
        }

        if (auth.data != NULL) {
            OPENSSL_cleanse(auth.data, auth.len);
        }

        smarty_buf_free(&auth);
    }

    if (run.multi == NULL || run.reqs == NULL || run.retry == NULL
        || run.idx == NULL || l == NULL)
    {
        fprintf(stderr, "smarty: out of memory\n");
        rc = SMARTY_EXIT_TRANSPORT;
        goto done;
    }

    maxconn = job->parallel;
    curl_multi_setopt(run.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, maxconn);

    /* Ctrl-C: stop sending, finish what is in flight, say how to resume */

    smarty_signals = 0;
    memset(&sa, 0, sizeof(struct sigaction));
    sa.sa_handler = smarty_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    /* a closed pipe on stdout is a write error, not a death */
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, &old_pipe);

    /* what was found wrong before sending: its lines first */

    for (i = 0; i < job->nitems && !run.fatal; i++) {
        if (job->items[i].error != NULL
            && job->items[i].state == SMARTY_ITEM_QUEUED)
        {
            smarty_final(&run, &job->items[i], 1, job->items[i].error,
                         job->items[i].code, NULL, NULL);
        }
    }

    smarty_progress(&run, smarty_now(), 0);

    for ( ;; ) {
        now = smarty_now();
        smarty_signals_check(&run);

        while (!run.stopping && !run.fatal
               && run.running < (size_t) run.window
               && now >= run.hold)
        {
            n = smarty_batch_take(&run, now, &bytes);

            if (n == 0 || smarty_req_start(&run, n, bytes) != 0) {
                break;
            }
        }

        if (run.running == 0
            && (run.stopping || run.fatal
                || (run.next >= job->nitems && run.nretry == 0)))
        {
            break;
        }

        curl_multi_perform(run.multi, &still);

        while ((msg = curl_multi_info_read(run.multi, &still)) != NULL) {
            if (msg->msg != CURLMSG_DONE) {
                continue;
            }

            req = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &req);
            smarty_req_done(&run, req, msg->data.result);
            smarty_req_free(&run, req);
        }

        if (run.fatal && run.running > 0) {
            smarty_abort_all(&run);
        }

        smarty_progress(&run, smarty_now(), 0);

        if (run.running > 0 || run.nretry > 0 || run.hold > now) {
            curl_multi_poll(run.multi, NULL, 0, SMARTY_TICK_MS, NULL);
        }
    }

    now = smarty_now();
    smarty_progress(&run, now, 1);
    smarty_progress_clear(job);

    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);

    if (run.stopping && !run.fatal) {
        fprintf(stderr, "smarty: interrupted\n");
    }

    smarty_summary(&run, now);

    if ((run.stopping || run.fatal) && job->written < job->total) {
        smarty_resume_hint(&run);
    }

    if (run.fatal) {
        rc = run.fatal;

    } else if (run.stopping) {
        rc = 128 + (smarty_signo ? smarty_signo : SIGINT);

    } else if (job->failed > 0) {
        rc = SMARTY_EXIT_IMAGES;

    } else {
        rc = SMARTY_EXIT_OK;
    }

done:

    if (run.multi != NULL) {
        if (run.reqs != NULL) {
            smarty_abort_all(&run);
        }

        curl_multi_cleanup(run.multi);
    }

    curl_slist_free_all(run.headers);
    curl_global_cleanup();

    free(run.reqs);
    free(run.retry);
    free(run.idx);

    return rc;
}


static void
smarty_on_signal(int signo)
{
    smarty_signo = signo;
    smarty_signals++;
}


static void
smarty_signals_check(smarty_run_t *run)
{
    if (smarty_signals == 0 || run->stopping == 2) {
        return;
    }

    if (run->stopping == 0) {
        run->stopping = 1;

        if (run->running > 0) {
            smarty_say(run, "interrupted: waiting for the %zu request%s in "
                       "flight (Ctrl-C again to abort %s)", run->running,
                       run->running > 1 ? "s" : "",
                       run->running > 1 ? "them" : "it");
        }
    }

    if (smarty_signals >= 2) {
        run->stopping = 2;
        smarty_abort_all(run);
    }
}


/*
 * The next batch into run->idx: first the items to send again whose time
 * has come, then fresh ones, within the images and bytes of a request (an
 * item alone may be larger).  Returns its number of items.
 */

static size_t
smarty_batch_take(smarty_run_t *run, double now, size_t *bytes)
{
    size_t          i, j, n, b, cost, limit;
    smarty_job_t   *job;
    smarty_item_t  *it;

    job = run->job;
    limit = job->cmd == SMARTY_CMD_TRUNCATE ? 1 : job->max_images;
    n = 0;
    b = 512;

    for (i = 0, j = 0; i < run->nretry; i++) {
        it = &job->items[run->retry[i]];
        cost = smarty_item_cost(it);

        if (n < limit && it->not_before <= now
            && (n == 0 || b + cost <= job->max_bytes))
        {
            run->idx[n++] = run->retry[i];
            b += cost;

        } else {
            run->retry[j++] = run->retry[i];
        }
    }

    run->nretry = j;

    while (n < limit && run->next < job->nitems) {
        it = &job->items[run->next];

        if (it->state != SMARTY_ITEM_QUEUED) {
            run->next++;
            continue;
        }

        cost = smarty_item_cost(it);

        if (n > 0 && b + cost > job->max_bytes) {
            break;
        }

        run->idx[n++] = run->next++;
        b += cost;
    }

    *bytes = b;

    return n;
}


static size_t
smarty_item_cost(smarty_item_t *it)
{
    if (it->type == NULL) {
        return 64;
    }

    return it->size + SMARTY_PART_OVERHEAD + strlen(it->filename);
}


/* a request for the n items of run->idx; 0, or -1 when none could go */

static int
smarty_req_start(smarty_run_t *run, size_t n, size_t bytes)
{
    int             rc;
    long            ms;
    char            name[32];
    size_t          i, k, slot;
    smarty_job_t   *job;
    smarty_req_t   *req;
    smarty_item_t  *it;
    curl_mimepart  *part;

    job = run->job;

    req = calloc(1, sizeof(smarty_req_t));
    if (req == NULL) {
        goto nomem;
    }

    req->idx = malloc(n * sizeof(size_t));
    req->h = curl_easy_init();

    if (req->idx == NULL || req->h == NULL) {
        goto nomem;
    }

    /* a file gone or unreadable since the walk: its line now, not sent */

    for (i = 0; i < n; i++) {
        it = &job->items[run->idx[i]];

        if (it->type != NULL && access(it->key, R_OK) == -1) {
            smarty_final(run, it, 1, strerror(errno), "unreadable", NULL,
                         NULL);
            continue;
        }

        req->idx[req->n++] = run->idx[i];
    }

    if (req->n == 0) {
        smarty_req_free(run, req);
        return 0;
    }

    /* the meta: space, create_new, and one entry per item */

    rc = smarty_buf_printf(&req->meta, "{\"space\":\"%s\"", job->space);

    if (job->cmd == SMARTY_CMD_RECOGNIZE) {
        rc |= smarty_buf_printf(&req->meta, ",\"create_new\":%s",
                                job->create_new ? "true" : "false");
    }

    if (job->cmd != SMARTY_CMD_TRUNCATE) {
        rc |= smarty_buf_add(&req->meta, ",\"images\":[", 11);

        for (k = 0; k < req->n; k++) {
            it = &job->items[req->idx[k]];
            rc |= smarty_buf_printf(&req->meta, "%s{\"name\":\"file_%zu\"",
                                    k ? "," : "", k);

            if (job->cmd != SMARTY_CMD_RECOGNIZE) {
                rc |= smarty_buf_printf(&req->meta, ",\"person_id\":%lld",
                                        it->person_id);
            }

            rc |= smarty_buf_add(&req->meta, "}", 1);
        }

        rc |= smarty_buf_add(&req->meta, "]", 1);
    }

    rc |= smarty_buf_add(&req->meta, "}", 1);

    if (rc != 0) {
        goto nomem;
    }

    /* the body: meta, then the photos as file_0, file_1, ... */

    req->mime = curl_mime_init(req->h);
    part = curl_mime_addpart(req->mime);

    if (part == NULL
        || curl_mime_name(part, "meta") != CURLE_OK
        || curl_mime_data(part, req->meta.data, req->meta.len) != CURLE_OK)
    {
        goto nomem;
    }

    for (k = 0; k < req->n; k++) {
        it = &job->items[req->idx[k]];

        if (it->type == NULL) {
            continue;
        }

        snprintf(name, sizeof(name), "file_%zu", k);
        part = curl_mime_addpart(req->mime);

        if (part == NULL
            || curl_mime_name(part, name) != CURLE_OK
            || curl_mime_filedata(part, it->key) != CURLE_OK
            || curl_mime_filename(part, it->filename) != CURLE_OK
            || curl_mime_type(part, it->type) != CURLE_OK)
        {
            goto nomem;
        }
    }

    /* at least 1 ms: 0 would mean no limit at all */
    ms = (long) (job->timeout * 1000);
    ms = ms > 0 ? ms : 1;

    req->retry_after = -1;
    req->bytes = bytes;
    req->started = smarty_now();

    curl_easy_setopt(req->h, CURLOPT_URL, job->url);
    curl_easy_setopt(req->h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(req->h, CURLOPT_MIMEPOST, req->mime);
    curl_easy_setopt(req->h, CURLOPT_HTTPHEADER, run->headers);
    curl_easy_setopt(req->h, CURLOPT_USERAGENT, SMARTY_USER_AGENT);
    curl_easy_setopt(req->h, CURLOPT_TIMEOUT_MS, ms);
    curl_easy_setopt(req->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(req->h, CURLOPT_ERRORBUFFER, req->errbuf);
    curl_easy_setopt(req->h, CURLOPT_WRITEFUNCTION, smarty_body);
    curl_easy_setopt(req->h, CURLOPT_WRITEDATA, req);
    curl_easy_setopt(req->h, CURLOPT_HEADERFUNCTION, smarty_header);
    curl_easy_setopt(req->h, CURLOPT_HEADERDATA, req);
    curl_easy_setopt(req->h, CURLOPT_PRIVATE, req);

    for (slot = 0; slot < (size_t) job->parallel; slot++) {
        if (run->reqs[slot] == NULL) {
            break;
        }
    }

    if (slot == (size_t) job->parallel
        || curl_multi_add_handle(run->multi, req->h) != CURLM_OK)
    {
        goto nomem;
    }

    run->reqs[slot] = req;
    run->running++;
    req->nr = ++job->requests;

    for (k = 0; k < req->n; k++) {
        job->items[req->idx[k]].state = SMARTY_ITEM_SENT;
    }

    return 0;

nomem:

    smarty_say(run, "out of memory");

    if (req != NULL) {
        for (k = 0; k < req->n; k++) {
            smarty_requeue(run, req->idx[k], 0);
        }

        smarty_req_free(run, req);
    }

    run->fatal = SMARTY_EXIT_TRANSPORT;

    return -1;
}


static void
smarty_req_done(smarty_run_t *run, smarty_req_t *req, CURLcode cc)
{
    long           http, st;
    double         now;
    json_t        *root, *body, *status;
    const char    *error, *code;
    json_error_t   err;
    smarty_job_t  *job;
    smarty_buf_t   msg;

    job = run->job;
    now = smarty_now();

    if (cc != CURLE_OK) {
        memset(&msg, 0, sizeof(smarty_buf_t));
        error = req->errbuf[0] ? req->errbuf : curl_easy_strerror(cc);
        smarty_buf_add(&msg, "transport failure: ", 19);
        smarty_mask(&msg, error, strlen(error));

        if (job->verbose) {
            smarty_say(run, "request %zu (%zu images): %s", req->nr,
                       req->n, msg.data ? msg.data : "");
        }

        smarty_req_retry(run, req, msg.data ? msg.data : "transport failure",
                         NULL, 1, now);
        smarty_buf_free(&msg);
        return;
    }

    http = 0;
    curl_easy_getinfo(req->h, CURLINFO_RESPONSE_CODE, &http);

    root = NULL;

    if (req->answer.len > 0) {
        root = json_loadb(req->answer.data, req->answer.len, 0, &err);
    }

    body = json_object_get(root, "body");
    status = json_object_get(root, "status");
    error = json_string_value(json_object_get(body, "error"));
    code = json_string_value(json_object_get(body, "code"));

    /* the envelope's status says more than an HTTP 200 */
    st = (http >= 200 && http <= 299 && json_is_integer(status))
         ? (long) json_integer_value(status) : http;

    if (job->verbose) {
        smarty_say(run, "request %zu (%zu images, %zu bytes): HTTP %ld%s%s, "
                   "%.2f s%s%s", req->nr, req->n, req->bytes, http,
                   code ? " " : "", code ? code : "", now - req->started,
                   req->cache[0] ? "; Cache-Status: " : "", req->cache);
    }

    if (http >= 200 && http <= 299 && st == 200 && json_is_object(body)) {
        run->window += 1 / run->window;

        if (run->window > job->parallel) {
            run->window = job->parallel;
        }

        smarty_req_answer(run, req, body, now);

    } else if (st == 429) {
        smarty_req_wait(run, req, body, code, now);

    } else if (st == 413) {
        smarty_req_split(run, req, error, code);

    } else if (st == 401 || st == 403 || st == 404 || st == 405) {
        /* the key, the space or the URL: every request would fail */
        smarty_say(run, "the gateway refused the run: HTTP %ld%s%s%s%s%s",
                   st, error ? ": " : "", error ? error : "",
                   code ? " (" : "", code ? code : "", code ? ")" : "");
        smarty_req_fail(run, req, -1, NULL, NULL);
        run->fatal = SMARTY_EXIT_API;

    } else if (st >= 500 || st == 408 || root == NULL
               || !json_is_object(body))
    {
        smarty_req_retry(run, req,
                         error ? error : root ? "no answer body"
                                              : "the answer is not JSON",
                         code, 0, now);

    } else {
        smarty_req_fail(run, req, 1,
                        error ? error : "the request was refused", code);
    }

    json_decref(root);
}


/* an envelope with status 200: one object per image */

static void
smarty_req_answer(smarty_run_t *run, smarty_req_t *req, json_t *body,
    double now)
{
    char            name[32];
    size_t          k, j, hits, np;
    json_t         *objects, *o, *st, *persons, *tag;
    long long       status;
    const char     *cache, *error, *oname;
    smarty_job_t   *job;
    smarty_item_t  *it;

    job = run->job;
    cache = smarty_cache_word(req, &hits);
    job->hits += hits < req->n ? hits : req->n;
    objects = json_object_get(body, "objects");

    for (k = 0; k < req->n; k++) {
        it = &job->items[req->idx[k]];

        if (job->cmd == SMARTY_CMD_TRUNCATE) {
            smarty_final(run, it, 0, NULL, NULL, NULL, NULL);
            continue;
        }

        /* the k-th object should answer file_k; else look for it */

        snprintf(name, sizeof(name), "file_%zu", k);
        o = json_array_get(objects, k);
        oname = json_string_value(json_object_get(o, "name"));

        if (oname == NULL || strcmp(oname, name) != 0) {
            o = NULL;

            for (j = 0; j < json_array_size(objects); j++) {
                oname = json_string_value(
                            json_object_get(json_array_get(objects, j),
                                            "name"));

                if (oname != NULL && strcmp(oname, name) == 0) {
                    o = json_array_get(objects, j);
                    break;
                }
            }
        }

        if (!json_is_object(o)) {
            it->attempts++;
            smarty_item_temporary(run, req->idx[k], "the answer has no "
                                  "object for this image", NULL, now);
            continue;
        }

        st = json_object_get(o, "status");
        status = json_is_integer(st) ? json_integer_value(st) : 0;
        error = json_string_value(json_object_get(o, "error"));

        if (status == 2) {
            it->attempts++;
            smarty_item_temporary(run, req->idx[k],
                                  error ? error : "temporary error", NULL,
                                  now);
            continue;
        }

        if (status != 0) {
            smarty_final(run, it, (int) status,
                         error ? error : "permanent error", NULL, NULL,
                         cache);
            continue;
        }

        persons = json_object_get(o, "persons");

        if (job->cmd == SMARTY_CMD_RECOGNIZE) {
            np = json_array_size(persons);
            job->persons += np;

            for (j = 0; j < np; j++) {
                tag = json_object_get(json_array_get(persons, j), "tag");

                if (json_is_string(tag)
                    && strcmp(json_string_value(tag), "undefined") != 0)
                {
                    job->known++;
                }
            }
        }

        smarty_final(run, it, 0, NULL, NULL,
                     json_is_array(persons) ? persons : NULL, cache);
    }
}


/* 429: no new request until Retry-After (or body.retry_after) */

static void
smarty_req_wait(smarty_run_t *run, smarty_req_t *req, json_t *body,
    const char *code, double now)
{
    size_t   k;
    double   wait;
    json_t  *ra;

    wait = req->retry_after;

    if (wait < 0) {
        ra = json_object_get(body, "retry_after");
        wait = json_is_number(ra) ? json_number_value(ra) : 1;
    }

    wait = wait < 0.05 ? 0.05 : wait > SMARTY_WAIT_MAX ? SMARTY_WAIT_MAX
                                                        : wait;

    /* said for the first wait and long ones; the progress shows them */

    if (now >= run->hold && (run->job->waits == 0 || wait >= 10)
        && !run->job->progress_tty && !run->job->quiet)
    {
        smarty_say(run, "a quota is reached (%s): waiting %.0f s",
                   code ? code : "HTTP 429", wait < 1 ? 1 : wait);
    }

    if (now + wait > run->hold) {
        run->hold = now + wait;
        snprintf(run->hold_code, sizeof(run->hold_code), "%s",
                 code ? code : "429");
    }

    /* fewer requests at once, so as not to come back all together */
    run->window = run->window / 2 < 1 ? 1 : run->window / 2;
    run->job->waits++;

    for (k = 0; k < req->n; k++) {
        smarty_requeue(run, req->idx[k], run->hold);
    }
}


/* 413: the batch is too large for a limit; alone, the image is */

static void
smarty_req_split(smarty_run_t *run, smarty_req_t *req, const char *error,
    const char *code)
{
    int            changed;
    size_t         k;
    smarty_job_t  *job;

    job = run->job;
    changed = 0;

    if (req->n == 1) {
        smarty_req_fail(run, req, 1, error ? error : "too large",
                        code ? code : "too_large");
        return;
    }

    job->splits++;

    if (code != NULL && strcmp(code, "body_too_large") == 0) {
        if (req->bytes / 2 < job->max_bytes) {
            job->max_bytes = req->bytes / 2;
            changed = 1;
        }

    } else if (req->n / 2 < job->max_images) {
        job->max_images = req->n / 2;
        changed = 1;
    }

    /* said once per change, not once per request refused */

    if (changed && !job->quiet) {
        smarty_say(run, "a batch of %zu images was refused (%s): sending "
                   "batches of at most %zu images and %zu bytes now",
                   req->n, code ? code : "HTTP 413", job->max_images,
                   job->max_bytes);
    }

    for (k = 0; k < req->n; k++) {
        smarty_requeue(run, req->idx[k], 0);
    }
}


/* 5xx, a transport failure, no JSON: the whole batch again, later */

static void
smarty_req_retry(smarty_run_t *run, smarty_req_t *req, const char *error,
    const char *code, int transport, double now)
{
    int             worst;
    size_t          k;
    double          delay;
    smarty_job_t   *job;
    smarty_item_t  *it;

    job = run->job;
    worst = 0;

    for (k = 0; k < req->n; k++) {
        it = &job->items[req->idx[k]];
        it->attempts++;
        worst = it->attempts > worst ? it->attempts : worst;
    }

    if (transport && (worst > job->retries || run->fatal)) {
        /* the gateway is out of reach: stop, the run can be resumed */
        if (!run->fatal) {
            smarty_say(run, "gave up after %d attempts: %s", worst, error);
            run->fatal = SMARTY_EXIT_TRANSPORT;
        }

        smarty_req_fail(run, req, -1, NULL, NULL);
        return;
    }

    delay = smarty_delay(job, worst);

    if (req->retry_after > delay) {
        delay = req->retry_after;
    }

    for (k = 0; k < req->n; k++) {
        it = &job->items[req->idx[k]];

        if (it->attempts > job->retries) {
            smarty_item_temporary(run, req->idx[k], error, code, now);

        } else {
            job->retried++;
            smarty_requeue(run, req->idx[k], now + delay);
        }
    }
}


/* every item of the request: a final line (status >= 0) or back to the
 * queue, unwritten (-1: the run stops, a resume sends them) */

static void
smarty_req_fail(smarty_run_t *run, smarty_req_t *req, int status,
    const char *error, const char *code)
{
    size_t  k;

    for (k = 0; k < req->n; k++) {
        if (status < 0) {
            run->job->items[req->idx[k]].state = SMARTY_ITEM_QUEUED;

        } else {
            smarty_final(run, &run->job->items[req->idx[k]], status, error,
                         code, NULL, NULL);
        }
    }
}


/* a temporary failure of one item (its attempts counted): again after a
 * backoff, or given up */

static void
smarty_item_temporary(smarty_run_t *run, size_t i, const char *error,
    const char *code, double now)
{
    smarty_job_t   *job;
    smarty_item_t  *it;
    smarty_buf_t    msg;

    job = run->job;
    it = &job->items[i];

    if (it->attempts <= job->retries) {
        job->retried++;
        smarty_requeue(run, i, now + smarty_delay(job, it->attempts));
        return;
    }

    memset(&msg, 0, sizeof(smarty_buf_t));
    smarty_buf_printf(&msg, "gave up after %d attempts: %s", it->attempts,
                      error);
    smarty_final(run, it, 2, msg.data ? msg.data : error, code, NULL, NULL);
    smarty_buf_free(&msg);
}


static void
smarty_requeue(smarty_run_t *run, size_t i, double when)
{
    smarty_item_t  *it;

    it = &run->job->items[i];
    it->state = SMARTY_ITEM_QUEUED;
    it->not_before = when;
    run->retry[run->nretry++] = i;
}


/* the line of an item that is done, whatever became of it */

static void
smarty_final(smarty_run_t *run, smarty_item_t *it, int status,
    const char *error, const char *code, json_t *persons, const char *cache)
{
    smarty_job_t  *job;

    job = run->job;

    if (job->cmd == SMARTY_CMD_TRUNCATE && status != 0) {
        smarty_say(run, "truncate: space %s: %s%s%s%s", job->space, error,
                   code ? " (" : "", code ? code : "", code ? ")" : "");
    }

    if (smarty_out_line(job, it, status, error, code, persons, cache) != 0
        && !run->fatal)
    {
        smarty_say(run, "cannot write the output%s%s: %s",
                   job->out_path ? " " : "",
                   job->out_path ? job->out_path : "", strerror(errno));
        run->fatal = SMARTY_EXIT_API;
    }
}


static void
smarty_req_free(smarty_run_t *run, smarty_req_t *req)
{
    size_t  slot;

    for (slot = 0; slot < (size_t) run->job->parallel; slot++) {
        if (run->reqs[slot] == req) {
            run->reqs[slot] = NULL;
            run->running--;
            curl_multi_remove_handle(run->multi, req->h);
            break;
        }
    }

    if (req->h != NULL) {
        curl_easy_cleanup(req->h);
    }

    curl_mime_free(req->mime);
    smarty_buf_free(&req->meta);
    smarty_buf_free(&req->answer);
    free(req->idx);
    free(req);
}


/* the requests in flight, dropped; their items go unwritten */

static void
smarty_abort_all(smarty_run_t *run)
{
    size_t         slot;
    smarty_req_t  *req;

    for (slot = 0; slot < (size_t) run->job->parallel; slot++) {
        req = run->reqs[slot];

        if (req != NULL) {
            smarty_req_fail(run, req, -1, NULL, NULL);
            smarty_req_free(run, req);
        }
    }
}


/* backoff * 2^(attempts-1), at most SMARTY_BACKOFF_MAX, times 0.5 to 1 */

static double
smarty_delay(smarty_job_t *job, int attempts)
{
    int     i;
    double  d;

    d = job->backoff;

    for (i = 1; i < attempts && d < SMARTY_BACKOFF_MAX; i++) {
        d *= 2;
    }

    d = d > SMARTY_BACKOFF_MAX ? SMARTY_BACKOFF_MAX : d;

    return d * (0.5 + 0.5 * ((double) random() / RAND_MAX));
}


/*
 * The request's Cache-Status in a word: "hit" (every image from the
 * cache), "partial" (*hits of them), "miss", or NULL without the header.
 */

static const char *
smarty_cache_word(smarty_req_t *req, size_t *hits)
{
    char  *p;

    *hits = 0;

    if (req->cache[0] == '\0') {
        return NULL;
    }

    if (strstr(req->cache, "; hit") != NULL) {
        *hits = req->n;
        return "hit";
    }

    if (strstr(req->cache, "fwd=partial") != NULL) {
        p = strstr(req->cache, "detail=\"");

        if (p != NULL) {
            *hits = strtoul(p + 8, NULL, 10);
        }

        return "partial";
    }

    return "miss";
}


static size_t
smarty_header(char *p, size_t size, size_t n, void *ud)
{
    char          *end;
    size_t         len;
    double         v;
    smarty_req_t  *req;

    req = ud;

    if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        /* a new answer (after a 100 Continue): forget the last one's */
        req->retry_after = -1;
        req->cache[0] = '\0';
        return n;
    }

    len = n;

    while (len > 0 && (p[len - 1] == '\r' || p[len - 1] == '\n')) {
        len--;
    }

    if (len > 12 && strncasecmp(p, "retry-after:", 12) == 0) {
        char  num[32];

        snprintf(num, sizeof(num), "%.*s", (int) (len - 12), p + 12);
        v = strtod(num, &end);

        /* delay-seconds only; an HTTP-date falls back to the body */
        if (end != num && v >= 0) {
            req->retry_after = v;
        }

    } else if (len > 13 && strncasecmp(p, "cache-status:", 13) == 0) {
        p += 13;
        len -= 13;

        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }

        snprintf(req->cache, sizeof(req->cache), "%.*s", (int) len, p);
    }

    return n;
}


static size_t
smarty_body(char *p, size_t size, size_t n, void *ud)
{
    smarty_req_t  *req;

    req = ud;

    if (req->answer.len + n > SMARTY_ANSWER_MAX) {
        return 0;
    }

    return smarty_buf_add(&req->answer, p, n) == 0 ? n : 0;
}


/*
 * On a terminal, one line redrawn in place; otherwise a plain line every
 * job->interval seconds; nothing with --quiet.
 */

static void
smarty_progress(smarty_run_t *run, double now, int final)
{
    int            pct;
    char           eta[32];
    double         rate, left, elapsed;
    smarty_job_t  *job;
    smarty_buf_t   line;

    job = run->job;

    if (job->quiet || job->cmd == SMARTY_CMD_TRUNCATE) {
        return;
    }

    if (job->progress_tty) {
        if (!final && job->progress_drawn && now - run->drawn
                                             < SMARTY_DRAW_EVERY)
        {
            return;
        }

    } else if (final || job->interval <= 0 || now - run->drawn
                                              < job->interval)
    {
        return;
    }

    run->drawn = now;
    elapsed = now - run->start;
    rate = elapsed > 0 ? job->written / elapsed : 0;
    pct = job->total ? (int) (100.0 * job->written / job->total) : 100;

    if (job->written >= job->total) {
        snprintf(eta, sizeof(eta), "0:00");

    } else if (rate > 0) {
        left = (job->total - job->written) / rate;

        if (left >= 3600) {
            snprintf(eta, sizeof(eta), "%d:%02d:%02d", (int) left / 3600,
                     ((int) left / 60) % 60, (int) left % 60);

        } else {
            snprintf(eta, sizeof(eta), "%d:%02d", (int) left / 60,
                     (int) left % 60);
        }

    } else {
        snprintf(eta, sizeof(eta), "-");
    }

    memset(&line, 0, sizeof(smarty_buf_t));
    smarty_buf_printf(&line, "%s: %zu/%zu %s (%d%%), %.1f/s, ETA %s, %zu "
                      "error%s", job->name, job->written, job->total,
                      job->cmd == SMARTY_CMD_DELETE ? "persons" : "images",
                      pct, rate, eta, job->failed,
                      job->failed == 1 ? "" : "s");

    if (job->retried > 0) {
        smarty_buf_printf(&line, ", %zu retried", job->retried);
    }

    if (run->hold > now) {
        smarty_buf_printf(&line, ", waiting %.0f s (%s)",
                          run->hold - now < 1 ? 1 : run->hold - now,
                          run->hold_code);
    }

    if (run->stopping) {
        smarty_buf_printf(&line, ", stopping");
    }

    if (line.data != NULL) {
        if (job->progress_tty) {
            fprintf(stderr, "\r%s\033[K", line.data);
            job->progress_drawn = 1;

        } else {
            fprintf(stderr, "smarty: %s\n", line.data);
        }

        fflush(stderr);
    }

    smarty_buf_free(&line);
}


static void
smarty_summary(smarty_run_t *run, double now)
{
    double         elapsed;
    smarty_job_t  *job;
    smarty_buf_t   s;

    job = run->job;

    if (job->quiet) {
        return;
    }

    if (job->cmd == SMARTY_CMD_TRUNCATE) {
        if (job->ok > 0) {
            fprintf(stderr, "smarty: truncate: space %s is empty now\n",
                    job->space);
        }

        return;
    }

    elapsed = now - run->start;
    memset(&s, 0, sizeof(smarty_buf_t));

    smarty_buf_printf(&s, "%s: %zu %s%s: %zu ok, %zu error%s", job->name,
                      job->written, job->cmd == SMARTY_CMD_DELETE
                                    ? "person" : "image",
                      job->written == 1 ? "" : "s", job->ok, job->failed,
                      job->failed == 1 ? "" : "s");

    if (job->written < job->total) {
        smarty_buf_printf(&s, ", %zu not done", job->total - job->written);
    }

    if (job->cmd == SMARTY_CMD_RECOGNIZE) {
        smarty_buf_printf(&s, "; %zu person%s found (%zu known); %zu cache "
                          "hit%s", job->persons, job->persons == 1 ? "" : "s",
                          job->known, job->hits, job->hits == 1 ? "" : "s");
    }

    if (job->cmd != SMARTY_CMD_DELETE) {
        smarty_buf_printf(&s, "; %zu skipped (not images)", job->skipped);
    }

    if (job->resume) {
        smarty_buf_printf(&s, "; %zu done before (--resume)", job->resumed);
    }

    smarty_buf_printf(&s, "; %zu request%s", job->requests,
                      job->requests == 1 ? "" : "s");

    if (job->waits > 0) {
        smarty_buf_printf(&s, ", %zu quota wait%s", job->waits,
                          job->waits == 1 ? "" : "s");
    }

    if (job->splits > 0) {
        smarty_buf_printf(&s, ", %zu split%s", job->splits,
                          job->splits == 1 ? "" : "s");
    }

    if (job->retried > 0) {
        smarty_buf_printf(&s, ", %zu retried", job->retried);
    }

    smarty_buf_printf(&s, "; %.2f s, %.1f %s/s", elapsed,
                      elapsed > 0 ? job->written / elapsed : 0.0,
                      job->cmd == SMARTY_CMD_DELETE ? "persons" : "images");

    fprintf(stderr, "smarty: %s\n", s.data ? s.data : "");
    smarty_buf_free(&s);
}


/* the same command with --resume, the key given by -k left out, an
 * oauth_token in the URL masked */

static void
smarty_resume_hint(smarty_run_t *run)
{
    int            i, resume, keyarg, token;
    const char    *a;
    smarty_job_t  *job;
    smarty_buf_t   cmd, word;

    job = run->job;

    if (job->cmd == SMARTY_CMD_TRUNCATE) {
        return;
    }

    if (job->out_path == NULL) {
        fprintf(stderr, "smarty: %zu of %zu not done; the results went to "
                "stdout: with --out FILE a run can be resumed\n",
                job->total - job->written, job->total);
        return;
    }

    memset(&cmd, 0, sizeof(smarty_buf_t));
    smarty_shell_word(&cmd, job->prog);
    smarty_buf_add(&cmd, " ", 1);
    smarty_shell_word(&cmd, job->name);

    resume = 0;
    keyarg = 0;
    token = 0;

    for (i = 1; i < job->argc; i++) {
        a = job->argv[i];

        if (strcmp(a, "--") == 0) {
            break;
        }

        if (strcmp(a, "-k") == 0 || strcmp(a, "--key") == 0) {
            keyarg = 1;
            i++;
            continue;
        }

        if (strncmp(a, "-k", 2) == 0 || strncmp(a, "--key=", 6) == 0) {
            keyarg = 1;
            continue;
        }

        if (strcmp(a, "--resume") == 0) {
            resume = 1;
        }

        smarty_buf_add(&cmd, " ", 1);

        if (strstr(a, "oauth_token=") == NULL) {
            smarty_shell_word(&cmd, a);
            continue;
        }

        memset(&word, 0, sizeof(smarty_buf_t));
        smarty_mask(&word, a, strlen(a));
        smarty_shell_word(&cmd, word.data ? word.data : "");
        smarty_buf_free(&word);
        token = 1;
    }

    for ( /* void */ ; i < job->argc; i++) {
        smarty_buf_add(&cmd, " ", 1);
        smarty_shell_word(&cmd, job->argv[i]);
    }

    if (!resume) {
        smarty_buf_add(&cmd, " --resume", 9);
    }

    fprintf(stderr, "smarty: %zu of %zu are recorded in %s; to resume, "
            "run:\n  %s\n", job->resumed + job->written, job->nitems,
            job->out_path, cmd.data ? cmd.data : "");

    if (keyarg) {
        fprintf(stderr, "smarty: (the key given with -k is left out: put "
                "it in SMARTY_KEY or a --key-file)\n");
    }

    if (token) {
        fprintf(stderr, "smarty: (the URL's oauth_token is shown as ***)\n");
    }

    smarty_buf_free(&cmd);
}


/* s as one word of a POSIX shell: as is when safe, else in '' */

static void
smarty_shell_word(smarty_buf_t *b, const char *s)
{
    const char  *p;

    if (s[0] != '\0' && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "abcdefghijklmnopqrstuvwxyz"
                                  "0123456789_@%+=:,./-") == strlen(s))
    {
        smarty_buf_add(b, s, strlen(s));
        return;
    }

    smarty_buf_add(b, "'", 1);

    for (p = s; *p; p++) {
        if (*p == '\'') {
            smarty_buf_add(b, "'\\''", 4);

        } else {
            smarty_buf_add(b, p, 1);
        }
    }

    smarty_buf_add(b, "'", 1);
}


static void
smarty_say(smarty_run_t *run, const char *fmt, ...)
{
    va_list  ap;

    smarty_progress_clear(run->job);

    fputs("smarty: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
