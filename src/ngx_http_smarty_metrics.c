/*
 * smarty-gateway: Prometheus metrics (see ngx_http_smarty_metrics.h,
 * docs/metrics.md).
 *
 * The zone holds fixed arrays (histograms by method, counters by cache,
 * quota and error outcome) and a table of series, requests and images by
 * method, space, client and status, with open addressing: a series is
 * claimed once under the zone's mutex and never moves, so a request finds
 * its own without the lock, and every count is an atomic add.  Each
 * worker writes its Redis connection's state in a slot of its own every
 * second.  The label sets are bounded: methods and spaces are the API's,
 * clients the clients files', statuses the gateway's own.
 */

#include "ngx_http_smarty_metrics.h"
#include "ngx_http_smarty_audit.h"
#include "ngx_http_smarty_auth.h"
#include "ngx_http_smarty_cache.h"
#include "ngx_http_smarty_quota.h"
#include "ngx_http_smarty_redis.h"
#include "ngx_http_smarty_reply.h"
#include "ngx_http_smarty_token.h"
#include "ngx_http_smarty_upstream.h"
#include "smarty_metrics.h"


#define NGX_HTTP_SMARTY_METRICS_MAGIC    0x534d5431  /* "SMT1" */
#define NGX_HTTP_SMARTY_METRICS_M        (SMARTY_M_COUNT + 1)  /* + none */
#define NGX_HTTP_SMARTY_METRICS_SPACES   11                    /* + none */
#define NGX_HTTP_SMARTY_METRICS_WORKERS  64
#define NGX_HTTP_SMARTY_METRICS_CLIENT   64
#define NGX_HTTP_SMARTY_METRICS_PROBES   128
#define NGX_HTTP_SMARTY_METRICS_PUBLISH  1000       /* ms */
#define NGX_HTTP_SMARTY_METRICS_STALE    3          /* s */
#define NGX_HTTP_SMARTY_METRICS_SOURCES  16         /* token sources */
#define NGX_HTTP_SMARTY_METRICS_NODES    12         /* Redis nodes */
#define NGX_HTTP_SMARTY_METRICS_ADDR     62
#define NGX_HTTP_SMARTY_METRICS_NCOUNTS  8

#define NGX_HTTP_SMARTY_METRICS_REQUEST  0
#define NGX_HTTP_SMARTY_METRICS_UPSTREAM 1
#define NGX_HTTP_SMARTY_METRICS_OVERHEAD 2


typedef struct {
    ngx_atomic_t                     ready;
    u_char                           method;
    u_char                           space;
    uint16_t                         status;
    u_char                           client_len;
    u_char                           client[NGX_HTTP_SMARTY_METRICS_CLIENT];
    ngx_atomic_t                     requests;
    ngx_atomic_t                     images;
} ngx_http_smarty_metrics_series_t;


/* a Redis node as a worker sees it, copied every second */

typedef struct {
    u_char                           addr[NGX_HTTP_SMARTY_METRICS_ADDR];
    u_char                           addr_len;
    u_char                           role;      /* ..._roles[] */
    u_char                           ready;     /* connection "ready" */
    u_char                           open;      /* breaker not closed */
    uint64_t                         counts[NGX_HTTP_SMARTY_METRICS_NCOUNTS];
} ngx_http_smarty_metrics_node_t;


typedef struct {
    ngx_atomic_t                     pid;
    ngx_atomic_t                     state;     /* ..._redis_status_e */
    ngx_atomic_t                     updated;   /* ngx_time() */
    ngx_uint_t                       nnodes;
    ngx_http_smarty_metrics_node_t   nodes[NGX_HTTP_SMARTY_METRICS_NODES];
} ngx_http_smarty_metrics_worker_t;


typedef struct {
    uint32_t                         magic;
    uint32_t                         layout;    /* sizeof this struct */
    ngx_uint_t                       nseries;
    ngx_atomic_t                     used;
    ngx_atomic_t                     dropped;

    ngx_atomic_t                     hist[3][NGX_HTTP_SMARTY_METRICS_M]
                                         [SMARTY_METRICS_NBUCKETS];
    ngx_atomic_t                     hist_sum[3][NGX_HTTP_SMARTY_METRICS_M];
    ngx_atomic_t                     bytes_in[NGX_HTTP_SMARTY_METRICS_M];
    ngx_atomic_t                     bytes_out[NGX_HTTP_SMARTY_METRICS_M];
    ngx_atomic_t                     errors[SMARTY_E_LAST];
    ngx_atomic_t                     cache[NGX_HTTP_SMARTY_CACHE_OUTCOMES];
    ngx_atomic_t                     cache_hit_images;
    ngx_atomic_t                     upstream[6];  /* none, 1xx .. 5xx */
    ngx_atomic_t                     upstream_images;
    ngx_atomic_t                     quota[NGX_HTTP_SMARTY_QUOTA_OUTCOMES];
    ngx_atomic_t                     quota_refused[
                                         NGX_HTTP_SMARTY_QUOTA_LIMITS];
    ngx_atomic_t                     redis_errors[2];  /* cache, quota */

    ngx_http_smarty_metrics_worker_t workers[NGX_HTTP_SMARTY_METRICS_WORKERS];
    ngx_http_smarty_metrics_series_t series[1];
} ngx_http_smarty_metrics_sh_t;


typedef struct {
    ngx_http_smarty_metrics_sh_t    *sh;
    ngx_slab_pool_t                 *shpool;
} ngx_http_smarty_metrics_zone_t;


typedef struct {
    size_t                           size;      /* smarty_metrics_zone */
    ngx_uint_t                       endpoint;  /* a smarty_metrics */
    ngx_shm_zone_t                  *zone;
} ngx_http_smarty_metrics_main_conf_t;


typedef struct {
    ngx_flag_t                       collect;   /* smarty_metrics_collect */
} ngx_http_smarty_metrics_loc_conf_t;


static ngx_http_smarty_metrics_series_t *ngx_http_smarty_metrics_series(
    ngx_http_smarty_metrics_zone_t *z, ngx_uint_t method, ngx_uint_t space,
    ngx_uint_t status, const ngx_str_t *client);
static void ngx_http_smarty_metrics_observe(ngx_http_smarty_metrics_sh_t *sh,
    ngx_uint_t hist, ngx_uint_t method, ngx_msec_int_t ms);
static void ngx_http_smarty_metrics_publish(ngx_event_t *ev);
static ngx_int_t ngx_http_smarty_metrics_handler(ngx_http_request_t *r);
static void ngx_http_smarty_metrics_render(ngx_http_request_t *r,
    ngx_http_smarty_metrics_sh_t *sh, smarty_buf_t *b);
static void ngx_http_smarty_metrics_render_series(
    ngx_http_smarty_metrics_sh_t *sh, smarty_buf_t *b);
static void ngx_http_smarty_metrics_render_hist(
    ngx_http_smarty_metrics_sh_t *sh, smarty_buf_t *b, ngx_uint_t hist,
    const char *name, const char *help);
static void ngx_http_smarty_metrics_render_redis(
    ngx_http_smarty_metrics_sh_t *sh, smarty_buf_t *b);
static void ngx_http_smarty_metrics_render_nodes(
    ngx_http_smarty_metrics_sh_t *sh, smarty_buf_t *b, time_t now);
static void ngx_http_smarty_metrics_render_audit(smarty_buf_t *b);
static void ngx_http_smarty_metrics_render_token(smarty_buf_t *b);
static const char *ngx_http_smarty_metrics_method(ngx_uint_t m);
static ngx_int_t ngx_http_smarty_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static char *ngx_http_smarty_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_http_smarty_metrics_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_smarty_metrics_init_main_conf(ngx_conf_t *cf,
    void *conf);
static void *ngx_http_smarty_metrics_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_smarty_metrics_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_http_smarty_metrics_init_process(ngx_cycle_t *cycle);


static ngx_event_t                            ngx_http_smarty_metrics_ev;
static ngx_http_smarty_metrics_main_conf_t   *ngx_http_smarty_metrics_conf;


static const char  *ngx_http_smarty_metrics_cache_results[] = {
    NULL, "bypass", "unavailable", "miss", "partial", "hit"
};

static const char  *ngx_http_smarty_metrics_quota_results[] = {
    NULL, "pass", "refused", "local_pass", "local_refused", "closed"
};

/* the roles a topology gives its nodes (docs/redis.md); then "other" */
static const char  *ngx_http_smarty_metrics_roles[] = {
    "server", "master", "sentinel", "unused", NULL
};

static const char  *ngx_http_smarty_metrics_upstream_classes[] = {
    "none", "1xx", "2xx", "3xx", "4xx", "5xx"
};


static ngx_command_t  ngx_http_smarty_metrics_commands[] = {

    { ngx_string("smarty_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_smarty_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("smarty_metrics_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_smarty_metrics_main_conf_t, size),
      NULL },

    { ngx_string("smarty_metrics_collect"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_metrics_loc_conf_t, collect),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_smarty_metrics_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_smarty_metrics_create_main_conf, /* create main configuration */
    ngx_http_smarty_metrics_init_main_conf, /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_smarty_metrics_create_loc_conf, /* create location conf */
    ngx_http_smarty_metrics_merge_loc_conf /* merge location configuration */
};


ngx_module_t  ngx_http_smarty_metrics_module = {
    NGX_MODULE_V1,
    &ngx_http_smarty_metrics_module_ctx,   /* module context */
    ngx_http_smarty_metrics_commands,      /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_smarty_metrics_init_process,  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* --- a finished request -------------------------------------------------- */


void
ngx_http_smarty_metrics_finished(ngx_http_request_t *r)
{
    ngx_uint_t                            m, space, hits, images, cls;
    ngx_time_t                           *tp;
    const char                           *text;
    ngx_msec_int_t                        ms, up;
    ngx_http_smarty_ctx_t                *ctx;
    ngx_http_smarty_metrics_sh_t         *sh;
    ngx_http_smarty_metrics_zone_t       *z;
    ngx_http_smarty_metrics_series_t     *s;
    ngx_http_smarty_quota_outcome_t       q;
    ngx_http_smarty_cache_outcome_e       cache;
    ngx_http_smarty_metrics_loc_conf_t   *mlcf;
    ngx_http_smarty_metrics_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_smarty_metrics_module);
    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_metrics_module);

    if (mmcf->zone == NULL || !mlcf->collect) {
        return;
    }

    z = mmcf->zone->data;
    sh = z->sh;
    ctx = ngx_http_smarty_ctx(r);

    m = ctx->method ? (ngx_uint_t) ctx->method->id : SMARTY_M_COUNT;
    space = (ctx->m_valid && ctx->m.space >= 0) ? (ngx_uint_t) ctx->m.space
                                                 : 10;
    images = ctx->parts.nelts;

    s = ngx_http_smarty_metrics_series(z, m, space, ctx->status,
                                       ctx->client ? &ctx->client->name
                                                   : NULL);
    if (s != NULL) {
        (void) ngx_atomic_fetch_add(&s->requests, 1);
        (void) ngx_atomic_fetch_add(&s->images, images);
    }

    /* the latencies: whole, upstream, the rest is the gateway's */

    tp = ngx_timeofday();
    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));
    ms = ngx_max(ms, 0);
    up = ngx_http_smarty_upstream_time(r);

    ngx_http_smarty_metrics_observe(sh, NGX_HTTP_SMARTY_METRICS_REQUEST, m,
                                    ms);

    if (up >= 0) {
        ngx_http_smarty_metrics_observe(sh, NGX_HTTP_SMARTY_METRICS_UPSTREAM,
                                        m, up);
    }

    ngx_http_smarty_metrics_observe(sh, NGX_HTTP_SMARTY_METRICS_OVERHEAD, m,
                                    up >= 0 ? ngx_max(ms - up, 0) : ms);

    (void) ngx_atomic_fetch_add(&sh->bytes_in[m], r->request_length);
    (void) ngx_atomic_fetch_add(&sh->bytes_out[m], r->connection->sent);

    if (ctx->error.err != SMARTY_OK && ctx->error.err < SMARTY_E_LAST) {
        (void) ngx_atomic_fetch_add(&sh->errors[ctx->error.err], 1);
    }

    /* the cache, the upstream */

    cache = ngx_http_smarty_cache_outcome(r, &hits, &text);

    (void) ngx_atomic_fetch_add(&sh->cache[cache], 1);
    (void) ngx_atomic_fetch_add(&sh->cache_hit_images, hits);

    if (cache == NGX_HTTP_SMARTY_CACHE_UNAVAILABLE) {
        (void) ngx_atomic_fetch_add(&sh->redis_errors[0], 1);
    }

    if (up >= 0) {
        cls = ctx->up_status / 100;
        cls = (cls >= 1 && cls <= 5) ? cls : 0;

        (void) ngx_atomic_fetch_add(&sh->upstream[cls], 1);
        (void) ngx_atomic_fetch_add(&sh->upstream_images,
                                    images > hits ? images - hits : 0);
    }

    /* the quota */

    ngx_http_smarty_quota_outcome(r, &q);

    if (q.status < NGX_HTTP_SMARTY_QUOTA_OUTCOMES) {
        (void) ngx_atomic_fetch_add(&sh->quota[q.status], 1);
    }

    if (q.refused >= 0 && q.refused < NGX_HTTP_SMARTY_QUOTA_LIMITS) {
        (void) ngx_atomic_fetch_add(&sh->quota_refused[q.refused], 1);
    }

    if (q.redis_failed) {
        (void) ngx_atomic_fetch_add(&sh->redis_errors[1], 1);
    }
}


/* the series of (method, space, status, client), claimed if new */

static ngx_http_smarty_metrics_series_t *
ngx_http_smarty_metrics_series(ngx_http_smarty_metrics_zone_t *z,
    ngx_uint_t method, ngx_uint_t space, ngx_uint_t status,
    const ngx_str_t *client)
{
    size_t                             len;
    uint32_t                           h;
    ngx_uint_t                         i, n;
    const u_char                      *name;
    ngx_http_smarty_metrics_sh_t      *sh;
    ngx_http_smarty_metrics_series_t  *s;

    sh = z->sh;
    n = sh->nseries;

    name = client ? client->data : (u_char *) "";
    len = client ? ngx_min(client->len, NGX_HTTP_SMARTY_METRICS_CLIENT) : 0;

    ngx_crc32_init(h);
    ngx_crc32_update(&h, (u_char *) &method, sizeof(ngx_uint_t));
    ngx_crc32_update(&h, (u_char *) &space, sizeof(ngx_uint_t));
    ngx_crc32_update(&h, (u_char *) &status, sizeof(ngx_uint_t));
    ngx_crc32_update(&h, (u_char *) name, len);
    ngx_crc32_final(h);

    for (i = 0; i < NGX_HTTP_SMARTY_METRICS_PROBES && i < n; i++) {
        s = &sh->series[(h + i) % n];

        if (!s->ready) {
            ngx_shmtx_lock(&z->shpool->mutex);

            if (!s->ready) {
                s->method = (u_char) method;
                s->space = (u_char) space;
                s->status = (uint16_t) status;
                s->client_len = (u_char) len;
                ngx_memcpy(s->client, name, len);

                ngx_memory_barrier();
                s->ready = 1;
                sh->used++;

                ngx_shmtx_unlock(&z->shpool->mutex);
                return s;
            }

            ngx_shmtx_unlock(&z->shpool->mutex);
        }

        if (s->method == method && s->space == space && s->status == status
            && s->client_len == len && ngx_memcmp(s->client, name, len) == 0)
        {
            return s;
        }
    }

    (void) ngx_atomic_fetch_add(&sh->dropped, 1);

    return NULL;
}


static void
ngx_http_smarty_metrics_observe(ngx_http_smarty_metrics_sh_t *sh,
    ngx_uint_t hist, ngx_uint_t method, ngx_msec_int_t ms)
{
    size_t  b;

    b = smarty_metrics_bucket((uint64_t) ms);

    (void) ngx_atomic_fetch_add(&sh->hist[hist][method][b], 1);
    (void) ngx_atomic_fetch_add(&sh->hist_sum[hist][method], ms);
}


/* every second: this worker's Redis connection, for every scrape */

static void
ngx_http_smarty_metrics_publish(ngx_event_t *ev)
{
    ngx_uint_t                          i, k, n;
    ngx_http_smarty_metrics_node_t     *node;
    ngx_http_smarty_metrics_zone_t     *z;
    ngx_http_smarty_metrics_worker_t   *w;
    ngx_http_smarty_redis_node_info_t   info[NGX_HTTP_SMARTY_METRICS_NODES];

    if (ngx_http_smarty_metrics_conf == NULL
        || ngx_http_smarty_metrics_conf->zone == NULL
        || ngx_worker >= NGX_HTTP_SMARTY_METRICS_WORKERS)
    {
        return;
    }

    z = ngx_http_smarty_metrics_conf->zone->data;
    w = &z->sh->workers[ngx_worker];

    /* the nodes first: a scrape reads a slot whose time says it is new */

    n = ngx_http_smarty_redis_nodes(info, NGX_HTTP_SMARTY_METRICS_NODES);
    n = ngx_min(n, NGX_HTTP_SMARTY_METRICS_NODES);

    for (i = 0; i < n; i++) {
        node = &w->nodes[i];

        node->addr_len = (u_char) ngx_min(info[i].addr.len,
                                          NGX_HTTP_SMARTY_METRICS_ADDR);
        ngx_memcpy(node->addr, info[i].addr.data, node->addr_len);

        for (k = 0; ngx_http_smarty_metrics_roles[k] != NULL; k++) {
            if (info[i].role != NULL
                && ngx_strcmp(info[i].role, ngx_http_smarty_metrics_roles[k])
                   == 0)
            {
                break;
            }
        }

        node->role = (u_char) k;
        node->ready = (info[i].connection != NULL
                       && ngx_strcmp(info[i].connection, "ready") == 0);
        node->open = (info[i].breaker != NULL
                      && ngx_strcmp(info[i].breaker, "closed") != 0);
        node->counts[0] = info[i].sent;
        node->counts[1] = info[i].replies;
        node->counts[2] = info[i].error_replies;
        node->counts[3] = info[i].timeouts;
        node->counts[4] = info[i].lost;
        node->counts[5] = info[i].refused;
        node->counts[6] = info[i].redirects;
        node->counts[7] = info[i].connects;
    }

    w->nnodes = n;
    w->pid = ngx_pid;
    w->state = ngx_http_smarty_redis_state();
    w->updated = ngx_time();

    if (ev != NULL && !ngx_exiting) {
        ngx_add_timer(ev, NGX_HTTP_SMARTY_METRICS_PUBLISH);
    }
}


/* --- the endpoint -------------------------------------------------------- */


static ngx_int_t
ngx_http_smarty_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t                             rc;
    ngx_buf_t                            *b;
    smarty_buf_t                          text;
    smarty_err_e                          e;
    ngx_http_smarty_error_t               err;
    const ngx_http_smarty_client_t       *op;
    ngx_http_smarty_metrics_zone_t       *z;
    ngx_http_smarty_metrics_main_conf_t  *mmcf;

    ngx_memzero(&err, sizeof(ngx_http_smarty_error_t));

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        err.err = SMARTY_E_METHOD_NOT_ALLOWED;
        return ngx_http_smarty_reply_error(r, &err);
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    /* an operator's key only: it names every client and what it does */

    e = ngx_http_smarty_auth_identify(r, &op);

    if (e == SMARTY_OK && !op->operator) {
        e = SMARTY_E_OPERATOR_FORBIDDEN;
    }

    if (e != SMARTY_OK) {
        err.err = e;
        return ngx_http_smarty_reply_error(r, &err);
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_smarty_metrics_module);
    z = mmcf->zone->data;

    ngx_http_smarty_metrics_publish(NULL);

    smarty_buf_init(&text);
    ngx_http_smarty_metrics_render(r, z->sh, &text);

    if (text.failed) {
        smarty_buf_free(&text);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_create_temp_buf(r->pool, text.len);
    if (b == NULL) {
        smarty_buf_free(&text);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, text.data, text.len);
    smarty_buf_free(&text);

    return ngx_http_smarty_reply_buf(r, NGX_HTTP_OK,
                                     "text/plain; version=0.0.4; "
                                     "charset=utf-8", b);
}


static void
ngx_http_smarty_metrics_render(ngx_http_request_t *r,
    ngx_http_smarty_metrics_sh_t *sh, smarty_buf_t *b)
{
    char         labels[96];
    ngx_uint_t   i, m;

    ngx_http_smarty_metrics_render_series(sh, b);

    smarty_prom_family(b, "smarty_errors_total", "counter",
                       "The gateway's own error answers, by code.");

    for (i = 1; i < SMARTY_E_LAST; i++) {
        if (sh->errors[i]) {
            ngx_snprintf((u_char *) labels, sizeof(labels), "code=\"%s\"%Z",
                         smarty_err_info((smarty_err_e) i)->code);
            smarty_prom_sample(b, "smarty_errors_total", labels,
                               sh->errors[i]);
        }
    }

    ngx_http_smarty_metrics_render_hist(sh, b,
        NGX_HTTP_SMARTY_METRICS_REQUEST, "smarty_request_duration_seconds",
        "API requests from their first byte to their end, by method.");
    ngx_http_smarty_metrics_render_hist(sh, b,
        NGX_HTTP_SMARTY_METRICS_UPSTREAM, "smarty_upstream_duration_seconds",
        "Calls to the upstream API, by method.");
    ngx_http_smarty_metrics_render_hist(sh, b,
        NGX_HTTP_SMARTY_METRICS_OVERHEAD, "smarty_gateway_overhead_seconds",
        "API requests' time outside of the upstream call, by method.");

    smarty_prom_family(b, "smarty_received_bytes_total", "counter",
                       "Bytes of API requests (headers and bodies), by "
                       "method.");

    for (m = 0; m < NGX_HTTP_SMARTY_METRICS_M; m++) {
        if (sh->bytes_in[m]) {
            ngx_snprintf((u_char *) labels, sizeof(labels),
                         "method=\"%s\"%Z",
                         ngx_http_smarty_metrics_method(m));
            smarty_prom_sample(b, "smarty_received_bytes_total", labels,
                               sh->bytes_in[m]);
        }
    }

    smarty_prom_family(b, "smarty_sent_bytes_total", "counter",
                       "Bytes of API answers (headers and bodies), by "
                       "method.");

    for (m = 0; m < NGX_HTTP_SMARTY_METRICS_M; m++) {
        if (sh->bytes_out[m]) {
            ngx_snprintf((u_char *) labels, sizeof(labels),
                         "method=\"%s\"%Z",
                         ngx_http_smarty_metrics_method(m));
            smarty_prom_sample(b, "smarty_sent_bytes_total", labels,
                               sh->bytes_out[m]);
        }
    }

    /* the cache and the upstream */

    smarty_prom_family(b, "smarty_cache_requests_total", "counter",
                       "API requests the cache decided, by result.");

    for (i = 1; i < NGX_HTTP_SMARTY_CACHE_OUTCOMES; i++) {
        ngx_snprintf((u_char *) labels, sizeof(labels), "result=\"%s\"%Z",
                     ngx_http_smarty_metrics_cache_results[i]);
        smarty_prom_sample(b, "smarty_cache_requests_total", labels,
                           sh->cache[i]);
    }

    smarty_prom_family(b, "smarty_cache_hit_images_total", "counter",
                       "Images answered from the cache: upstream images "
                       "saved.");
    smarty_prom_sample(b, "smarty_cache_hit_images_total", NULL,
                       sh->cache_hit_images);

    smarty_prom_family(b, "smarty_upstream_requests_total", "counter",
                       "Calls to the upstream API, by the class of its "
                       "answer's status (none: no answer).");

    for (i = 0; i < 6; i++) {
        ngx_snprintf((u_char *) labels, sizeof(labels), "status=\"%s\"%Z",
                     ngx_http_smarty_metrics_upstream_classes[i]);
        smarty_prom_sample(b, "smarty_upstream_requests_total", labels,
                           sh->upstream[i]);
    }

    smarty_prom_family(b, "smarty_upstream_images_total", "counter",
                       "Images sent to the upstream API.");
    smarty_prom_sample(b, "smarty_upstream_images_total", NULL,
                       sh->upstream_images);

    /* the quotas */

    smarty_prom_family(b, "smarty_quota_requests_total", "counter",
                       "API requests whose quotas were decided, by result.");

    for (i = 1; i < NGX_HTTP_SMARTY_QUOTA_OUTCOMES; i++) {
        ngx_snprintf((u_char *) labels, sizeof(labels), "result=\"%s\"%Z",
                     ngx_http_smarty_metrics_quota_results[i]);
        smarty_prom_sample(b, "smarty_quota_requests_total", labels,
                           sh->quota[i]);
    }

    smarty_prom_family(b, "smarty_quota_refusals_total", "counter",
                       "API requests a quota refused, by the limit.");

    for (i = 0; i < NGX_HTTP_SMARTY_QUOTA_LIMITS; i++) {
        if (sh->quota_refused[i]) {
            ngx_snprintf((u_char *) labels, sizeof(labels),
                         "limit=\"%s\"%Z",
                         ngx_http_smarty_quota_limit_name(i));
            smarty_prom_sample(b, "smarty_quota_refusals_total", labels,
                               sh->quota_refused[i]);
        }
    }

    ngx_http_smarty_metrics_render_redis(sh, b);
    ngx_http_smarty_metrics_render_audit(b);
    ngx_http_smarty_metrics_render_token(b);

    smarty_prom_family(b, "smarty_metrics_series", "gauge",
                       "Series of smarty_requests_total in use.");
    smarty_prom_sample(b, "smarty_metrics_series", NULL, sh->used);

    smarty_prom_family(b, "smarty_metrics_series_capacity", "gauge",
                       "Series of smarty_requests_total the zone holds "
                       "(smarty_metrics_zone).");
    smarty_prom_sample(b, "smarty_metrics_series_capacity", NULL,
                       sh->nseries);

    smarty_prom_family(b, "smarty_metrics_dropped_total", "counter",
                       "Requests not counted in smarty_requests_total: "
                       "the zone was full.");
    smarty_prom_sample(b, "smarty_metrics_dropped_total", NULL,
                       sh->dropped);
}


static void
ngx_http_smarty_metrics_render_series(ngx_http_smarty_metrics_sh_t *sh,
    smarty_buf_t *b)
{
    size_t                             len;
    ngx_uint_t                         i, f;
    smarty_buf_t                       l;
    ngx_http_smarty_metrics_series_t  *s;
    static const char                 *names[] = {
        "smarty_requests_total", "smarty_images_total"
    };

    smarty_buf_init(&l);

    for (f = 0; f < 2; f++) {
        smarty_prom_family(b, names[f], "counter", f == 0
            ? "API requests, by method, space, client and the answer's "
              "status."
            : "Images in API requests, by method, space, client and the "
              "answer's status.");

        for (i = 0; i < sh->nseries; i++) {
            s = &sh->series[i];

            if (!s->ready) {
                continue;
            }

            l.len = 0;
            smarty_buf_printf(&l, "method=\"%s\",space=\"",
                              ngx_http_smarty_metrics_method(s->method));

            if (s->space < 10) {
                smarty_buf_printf(&l, "%u", (unsigned) s->space);
            }

            smarty_buf_add(&l, "\",client=\"", 10);
            len = ngx_min(s->client_len, NGX_HTTP_SMARTY_METRICS_CLIENT);
            smarty_prom_label(&l, (const char *) s->client, len);
            smarty_buf_printf(&l, "\",status=\"%u\"", (unsigned) s->status);

            if (l.failed) {
                break;
            }

            smarty_prom_sample(b, names[f], l.data,
                               f == 0 ? s->requests : s->images);
        }
    }

    smarty_buf_free(&l);
}


static void
ngx_http_smarty_metrics_render_hist(ngx_http_smarty_metrics_sh_t *sh,
    smarty_buf_t *b, ngx_uint_t hist, const char *name, const char *help)
{
    char        labels[64];
    uint64_t    counts[SMARTY_METRICS_NBUCKETS], any;
    ngx_uint_t  m, i;

    smarty_prom_family(b, name, "histogram", help);

    for (m = 0; m < NGX_HTTP_SMARTY_METRICS_M; m++) {
        any = 0;

        for (i = 0; i < SMARTY_METRICS_NBUCKETS; i++) {
            counts[i] = sh->hist[hist][m][i];
            any += counts[i];
        }

        if (any == 0) {
            continue;
        }

        ngx_snprintf((u_char *) labels, sizeof(labels), "method=\"%s\"%Z",
                     ngx_http_smarty_metrics_method(m));

        smarty_prom_histogram(b, name, labels, counts,
                              sh->hist_sum[hist][m]);
    }
}


static void
ngx_http_smarty_metrics_render_redis(ngx_http_smarty_metrics_sh_t *sh,
    smarty_buf_t *b)
{
    char                                labels[32];
    time_t                              now;
    uint64_t                            workers[4];
    ngx_uint_t                          i;
    ngx_http_smarty_audit_stats_t       st;
    ngx_http_smarty_metrics_worker_t   *w;
    static const char                  *states[] = {
        "up", "not_connected", "breaker_open", "not_configured"
    };

    smarty_prom_family(b, "smarty_redis_errors_total", "counter",
                       "Redis commands that got no reply in time or were "
                       "refused, by the concern that sent them.");
    smarty_prom_sample(b, "smarty_redis_errors_total",
                       "concern=\"cache\"", sh->redis_errors[0]);
    smarty_prom_sample(b, "smarty_redis_errors_total",
                       "concern=\"quota\"", sh->redis_errors[1]);

    if (ngx_http_smarty_audit_stats(&st) == NGX_OK) {
        smarty_prom_sample(b, "smarty_redis_errors_total",
                           "concern=\"audit\"", st.failures);
    }

    /* each worker's connection: up, or why commands are refused */

    ngx_memzero(workers, sizeof(workers));
    now = ngx_time();

    for (i = 0; i < NGX_HTTP_SMARTY_METRICS_WORKERS; i++) {
        w = &sh->workers[i];

        if (w->pid == 0
            || (time_t) w->updated + NGX_HTTP_SMARTY_METRICS_STALE < now)
        {
            continue;
        }

        switch (w->state) {
        case NGX_HTTP_SMARTY_REDIS_OK:
            workers[0]++;
            break;
        case NGX_HTTP_SMARTY_REDIS_BREAKER_OPEN:
            workers[2]++;
            break;
        case NGX_HTTP_SMARTY_REDIS_NOT_CONFIGURED:
            workers[3]++;
            break;
        default:
            workers[1]++;
            break;
        }
    }

    smarty_prom_family(b, "smarty_redis_workers", "gauge",
                       "nginx workers by the state of their Redis "
                       "connection.");

    for (i = 0; i < 4; i++) {
        ngx_snprintf((u_char *) labels, sizeof(labels), "state=\"%s\"%Z",
                     states[i]);
        smarty_prom_sample(b, "smarty_redis_workers", labels, workers[i]);
    }

    ngx_http_smarty_metrics_render_nodes(sh, b, now);
}


/*
 * Every Redis node the workers know (one server; a cluster's nodes; the
 * sentinels and their master): how many workers are connected to it, how
 * many find its breaker open, and what they sent it and got back, summed.
 */

static void
ngx_http_smarty_metrics_render_nodes(ngx_http_smarty_metrics_sh_t *sh,
    smarty_buf_t *b, time_t now)
{
    ngx_uint_t                          i, j, k, n, f;
    smarty_buf_t                        l;
    ngx_http_smarty_metrics_node_t     *node;
    ngx_http_smarty_metrics_worker_t   *w;
    struct {
        ngx_http_smarty_metrics_node_t  *node;   /* its address, role */
        uint64_t                         ready;
        uint64_t                         open;
        uint64_t                         counts[
                                             NGX_HTTP_SMARTY_METRICS_NCOUNTS];
        char                             labels[160];
    } agg[NGX_HTTP_SMARTY_METRICS_NODES];
    static const struct {
        const char  *name;
        const char  *help;
    } families[NGX_HTTP_SMARTY_METRICS_NCOUNTS] = {
        { "smarty_redis_node_commands_total",
          "Commands the workers wrote to the Redis node." },
        { "smarty_redis_node_replies_total",
          "Its replies, error replies included." },
        { "smarty_redis_node_error_replies_total",
          "Its error replies." },
        { "smarty_redis_node_timeouts_total",
          "Commands it did not answer in time." },
        { "smarty_redis_node_lost_total",
          "Commands lost with the connection." },
        { "smarty_redis_node_refused_total",
          "Commands refused at once: not connected, breaker open." },
        { "smarty_redis_node_redirects_total",
          "MOVED, ASK and TRYAGAIN replies (a cluster's)." },
        { "smarty_redis_node_connects_total",
          "Connections established (handshakes that succeeded)." }
    };

    n = 0;

    for (i = 0; i < NGX_HTTP_SMARTY_METRICS_WORKERS; i++) {
        w = &sh->workers[i];

        if (w->pid == 0
            || (time_t) w->updated + NGX_HTTP_SMARTY_METRICS_STALE < now)
        {
            continue;
        }

        for (j = 0; j < w->nnodes && j < NGX_HTTP_SMARTY_METRICS_NODES; j++) {
            node = &w->nodes[j];

            for (k = 0; k < n; k++) {
                if (agg[k].node->addr_len == node->addr_len
                    && ngx_memcmp(agg[k].node->addr, node->addr,
                                  node->addr_len) == 0)
                {
                    break;
                }
            }

            if (k == n) {
                if (n == NGX_HTTP_SMARTY_METRICS_NODES) {
                    continue;
                }

                ngx_memzero(&agg[n], sizeof(agg[0]));
                agg[n].node = node;
                n++;
            }

            agg[k].ready += node->ready;
            agg[k].open += node->open;

            for (f = 0; f < NGX_HTTP_SMARTY_METRICS_NCOUNTS; f++) {
                agg[k].counts[f] += node->counts[f];
            }
        }
    }

    smarty_buf_init(&l);

    for (k = 0; k < n; k++) {
        node = agg[k].node;

        l.len = 0;
        smarty_buf_add(&l, "node=\"", 6);
        smarty_prom_label(&l, (const char *) node->addr, node->addr_len);
        smarty_buf_printf(&l, "\",role=\"%s\"",
                          node->role < 4 ? ngx_http_smarty_metrics_roles[
                                               node->role]
                                         : "other");

        if (l.failed || l.len >= sizeof(agg[k].labels)) {
            agg[k].labels[0] = '\0';
            continue;
        }

        ngx_memcpy(agg[k].labels, l.data, l.len + 1);
    }

    smarty_buf_free(&l);

    smarty_prom_family(b, "smarty_redis_node_connected_workers", "gauge",
                       "Workers connected to the Redis node.");

    for (k = 0; k < n; k++) {
        smarty_prom_sample(b, "smarty_redis_node_connected_workers",
                           agg[k].labels, agg[k].ready);
    }

    smarty_prom_family(b, "smarty_redis_node_breaker_open_workers", "gauge",
                       "Workers whose breaker of the Redis node is open "
                       "(or lets a probe through).");

    for (k = 0; k < n; k++) {
        smarty_prom_sample(b, "smarty_redis_node_breaker_open_workers",
                           agg[k].labels, agg[k].open);
    }

    for (f = 0; f < NGX_HTTP_SMARTY_METRICS_NCOUNTS; f++) {
        smarty_prom_family(b, families[f].name, "counter", families[f].help);

        for (k = 0; k < n; k++) {
            smarty_prom_sample(b, families[f].name, agg[k].labels,
                               agg[k].counts[f]);
        }
    }
}


static void
ngx_http_smarty_metrics_render_audit(smarty_buf_t *b)
{
    ngx_http_smarty_audit_stats_t  st;

    if (ngx_http_smarty_audit_stats(&st) != NGX_OK) {
        return;
    }

    smarty_prom_family(b, "smarty_audit_records_total", "counter",
                       "Audit records made: one per API request.");
    smarty_prom_sample(b, "smarty_audit_records_total", NULL, st.records);

    smarty_prom_family(b, "smarty_audit_written_total", "counter",
                       "Audit records Redis took.");
    smarty_prom_sample(b, "smarty_audit_written_total", NULL, st.written);

    smarty_prom_family(b, "smarty_audit_buffered_total", "counter",
                       "Audit records kept back in the buffer because Redis "
                       "could not take them (written later).");
    smarty_prom_sample(b, "smarty_audit_buffered_total", NULL, st.buffered);

    smarty_prom_family(b, "smarty_audit_dropped_total", "counter",
                       "Audit records lost: the buffer was full.");
    smarty_prom_sample(b, "smarty_audit_dropped_total", NULL, st.dropped);

    smarty_prom_family(b, "smarty_audit_pending_records", "gauge",
                       "Audit records in the buffer, not yet written.");
    smarty_prom_sample(b, "smarty_audit_pending_records", NULL, st.pending);

    smarty_prom_family(b, "smarty_audit_pending_bytes", "gauge",
                       "Bytes of the buffer in use.");
    smarty_prom_sample(b, "smarty_audit_pending_bytes", NULL,
                       st.pending_bytes);

    smarty_prom_family(b, "smarty_audit_buffer_bytes", "gauge",
                       "Bytes the buffer holds (smarty_audit_buffer).");
    smarty_prom_sample(b, "smarty_audit_buffer_bytes", NULL,
                       st.capacity_bytes);
}


/*
 * The upstream's token: every source of the configuration that keeps
 * statistics (an OAuth endpoint; a file has none), labelled by its name.
 */

static void
ngx_http_smarty_metrics_render_token(smarty_buf_t *b)
{
    char                              labels[NGX_HTTP_SMARTY_METRICS_SOURCES]
                                            [320];
    int64_t                           now;
    ngx_uint_t                        i, n, f;
    smarty_buf_t                      l;
    ngx_array_t                      *sources;
    ngx_time_t                       *tp;
    ngx_http_smarty_token_stats_t     st[NGX_HTTP_SMARTY_METRICS_SOURCES];
    ngx_http_smarty_token_source_t  **src;
    static const struct {
        const char  *name;
        const char  *type;
        const char  *help;
        size_t       offset;
    } counters[] = {
        { "smarty_token_fetches_total", "counter",
          "Upstream tokens obtained from the token endpoint.",
          offsetof(ngx_http_smarty_token_stats_t, fetches) },
        { "smarty_token_refreshes_total", "counter",
          "Of which by the refresh grant.",
          offsetof(ngx_http_smarty_token_stats_t, refreshes) },
        { "smarty_token_adopted_total", "counter",
          "Upstream tokens taken from another instance (Redis).",
          offsetof(ngx_http_smarty_token_stats_t, adopted) },
        { "smarty_token_fetch_failures_total", "counter",
          "Attempts to obtain an upstream token that failed.",
          offsetof(ngx_http_smarty_token_stats_t, failures) },
        { "smarty_token_failing", "gauge",
          "Attempts that failed in a row, now (0: the last one worked).",
          offsetof(ngx_http_smarty_token_stats_t, failing) },
        { "smarty_token_rejected_total", "counter",
          "Upstream tokens the upstream refused.",
          offsetof(ngx_http_smarty_token_stats_t, rejected) },
        { "smarty_token_waits_total", "counter",
          "Requests that waited for an upstream token.",
          offsetof(ngx_http_smarty_token_stats_t, waits) },
        { "smarty_token_wait_timeouts_total", "counter",
          "Of which in vain.",
          offsetof(ngx_http_smarty_token_stats_t, wait_timeouts) }
    };

    sources = ngx_http_smarty_token_sources((ngx_cycle_t *) ngx_cycle);

    if (sources == NULL) {
        return;
    }

    src = sources->elts;
    n = 0;

    smarty_buf_init(&l);

    for (i = 0; i < sources->nelts && n < NGX_HTTP_SMARTY_METRICS_SOURCES;
         i++)
    {
        if (src[i]->ops->stats == NULL) {
            continue;
        }

        ngx_memzero(&st[n], sizeof(ngx_http_smarty_token_stats_t));
        src[i]->ops->stats(src[i], &st[n]);

        l.len = 0;
        smarty_buf_add(&l, "source=\"", 8);
        smarty_prom_label(&l, (const char *) st[n].name.data,
                          ngx_min(st[n].name.len, 256));
        smarty_buf_add(&l, "\"", 1);

        if (l.failed) {
            break;
        }

        ngx_memcpy(labels[n], l.data, l.len + 1);
        n++;
    }

    smarty_buf_free(&l);

    if (n == 0) {
        return;
    }

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + tp->msec;

    smarty_prom_family(b, "smarty_token_age_seconds", "gauge",
                       "Seconds since the upstream token was obtained.");

    for (i = 0; i < n; i++) {
        if (st[i].obtained) {
            smarty_prom_seconds(b, "smarty_token_age_seconds", labels[i],
                                now - st[i].obtained);
        }
    }

    smarty_prom_family(b, "smarty_token_expires_in_seconds", "gauge",
                       "Seconds the upstream token has left.");

    for (i = 0; i < n; i++) {
        if (st[i].expires) {
            smarty_prom_seconds(b, "smarty_token_expires_in_seconds",
                                labels[i], st[i].expires - now);
        }
    }

    for (f = 0; f < sizeof(counters) / sizeof(counters[0]); f++) {
        smarty_prom_family(b, counters[f].name, counters[f].type,
                           counters[f].help);

        for (i = 0; i < n; i++) {
            smarty_prom_sample(b, counters[f].name, labels[i],
                               *(ngx_uint_t *) ((u_char *) &st[i]
                                                + counters[f].offset));
        }
    }
}


static const char *
ngx_http_smarty_metrics_method(ngx_uint_t m)
{
    const smarty_method_t  *method;

    method = (m < SMARTY_M_COUNT) ? smarty_method_get((smarty_method_e) m)
                                  : NULL;

    return method ? method->path : "";
}


/* --- the zone ------------------------------------------------------------ */


static ngx_int_t
ngx_http_smarty_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_smarty_metrics_zone_t *oz = data;

    size_t                           size;
    ngx_uint_t                       n;
    ngx_http_smarty_metrics_zone_t  *z;

    z = shm_zone->data;

    if (oz && oz->sh->magic == NGX_HTTP_SMARTY_METRICS_MAGIC
        && oz->sh->layout == sizeof(ngx_http_smarty_metrics_sh_t))
    {
        /* a reload with the zone kept: the counters go on */
        z->sh = oz->sh;
        z->shpool = oz->shpool;
        return NGX_OK;
    }

    z->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        z->sh = z->shpool->data;
        return NGX_OK;
    }

    /* the series: every page left, less one for the slab's own needs */

    size = (z->shpool->pfree > 1) ? (z->shpool->pfree - 1) * ngx_pagesize
                                  : 0;

    if (size < sizeof(ngx_http_smarty_metrics_sh_t)
               + 16 * sizeof(ngx_http_smarty_metrics_series_t))
    {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "smarty_metrics_zone of %uz bytes is too small",
                      shm_zone->shm.size);
        return NGX_ERROR;
    }

    n = 1 + (size - sizeof(ngx_http_smarty_metrics_sh_t))
            / sizeof(ngx_http_smarty_metrics_series_t);

    z->sh = ngx_slab_calloc(z->shpool, size);
    if (z->sh == NULL) {
        return NGX_ERROR;
    }

    z->shpool->data = z->sh;
    z->shpool->log_nomem = 0;

    z->sh->nseries = n;
    z->sh->layout = sizeof(ngx_http_smarty_metrics_sh_t);
    z->sh->magic = NGX_HTTP_SMARTY_METRICS_MAGIC;

    return NGX_OK;
}


/* --- configuration ------------------------------------------------------- */


/* smarty_metrics: the location is the endpoint */

static char *
ngx_http_smarty_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t             *clcf;
    ngx_http_smarty_metrics_main_conf_t  *mmcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler != NULL) {
        return "is duplicate, or the location has another content handler";
    }

    clcf->handler = ngx_http_smarty_metrics_handler;

    mmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_smarty_metrics_module);
    mmcf->endpoint = 1;

    return NGX_CONF_OK;
}


static void *
ngx_http_smarty_metrics_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_smarty_metrics_main_conf_t  *mmcf;

    mmcf = ngx_pcalloc(cf->pool,
                       sizeof(ngx_http_smarty_metrics_main_conf_t));
    if (mmcf == NULL) {
        return NULL;
    }

    mmcf->size = NGX_CONF_UNSET_SIZE;

    return mmcf;
}


/* the zone, when the metrics are shown (or sized) */

static char *
ngx_http_smarty_metrics_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_smarty_metrics_main_conf_t *mmcf = conf;

    ngx_str_t                        name;
    ngx_http_smarty_metrics_zone_t  *z;

    if (!mmcf->endpoint && mmcf->size == NGX_CONF_UNSET_SIZE) {
        return NGX_CONF_OK;
    }

    ngx_conf_init_size_value(mmcf->size, 1024 * 1024);

    if (mmcf->size < 256 * 1024) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_metrics_zone\" must be at least 256k");
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&name, "smarty_metrics");

    mmcf->zone = ngx_shared_memory_add(cf, &name, mmcf->size,
                                       &ngx_http_smarty_metrics_module);
    if (mmcf->zone == NULL) {
        return NGX_CONF_ERROR;
    }

    z = ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_metrics_zone_t));
    if (z == NULL) {
        return NGX_CONF_ERROR;
    }

    mmcf->zone->init = ngx_http_smarty_metrics_init_zone;
    mmcf->zone->data = z;

    return NGX_CONF_OK;
}


static void *
ngx_http_smarty_metrics_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_smarty_metrics_loc_conf_t  *mlcf;

    mlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_metrics_loc_conf_t));
    if (mlcf == NULL) {
        return NULL;
    }

    mlcf->collect = NGX_CONF_UNSET;

    return mlcf;
}


static char *
ngx_http_smarty_metrics_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_smarty_metrics_loc_conf_t *prev = parent;
    ngx_http_smarty_metrics_loc_conf_t *conf = child;

    ngx_conf_merge_value(conf->collect, prev->collect, 1);

    return NGX_CONF_OK;
}


/* --- the worker ---------------------------------------------------------- */


static ngx_int_t
ngx_http_smarty_metrics_init_process(ngx_cycle_t *cycle)
{
    ngx_http_smarty_metrics_main_conf_t  *mmcf;

    mmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                          ngx_http_smarty_metrics_module);

    ngx_http_smarty_metrics_conf = mmcf;

    if (mmcf == NULL || mmcf->zone == NULL) {
        return NGX_OK;
    }

    ngx_http_smarty_metrics_ev.handler = ngx_http_smarty_metrics_publish;
    ngx_http_smarty_metrics_ev.log = cycle->log;
    ngx_http_smarty_metrics_ev.data = mmcf;
    ngx_http_smarty_metrics_ev.cancelable = 1;

    ngx_http_smarty_metrics_publish(&ngx_http_smarty_metrics_ev);

    return NGX_OK;
}
