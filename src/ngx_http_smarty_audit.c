/*
 * smarty-gateway: the audit trail (see ngx_http_smarty_audit.h,
 * docs/audit.md).
 *
 * A finished request's record (src/smarty_audit.c) goes into a ring in
 * shared memory (src/smarty_ring.c), and the worker arms its flush timer.
 * A flush sends the oldest records, up to a batch, to Redis (an XADD
 * each, trimmed, pipelined), and takes them from the ring once Redis has
 * them.  One batch is out at a time,
 * whichever worker sent it (its pid and a deadline in the zone), so the
 * records keep their order.  While Redis is away they stay in the ring
 * ("buffered"), and are sent when it is back; a record that finds the
 * ring full is dropped, and counted.  Nothing of this runs before the
 * answer has gone out, nor makes a request wait.
 */

#include "ngx_http_smarty_audit.h"
#include "ngx_http_smarty_auth.h"
#include "ngx_http_smarty_cache.h"
#include "ngx_http_smarty_quota.h"
#include "ngx_http_smarty_redis.h"
#include "ngx_http_smarty_upstream.h"
#include "smarty_audit.h"
#include "smarty_ring.h"


#define NGX_HTTP_SMARTY_AUDIT_MAGIC     0x53415531  /* "SAU1" */
#define NGX_HTTP_SMARTY_AUDIT_BATCH     100         /* records */
#define NGX_HTTP_SMARTY_AUDIT_BYTES     (1024 * 1024)
#define NGX_HTTP_SMARTY_AUDIT_DELAY     10          /* ms: gather a batch */
#define NGX_HTTP_SMARTY_AUDIT_RETRY     500         /* ms: Redis away */
#define NGX_HTTP_SMARTY_AUDIT_LEASE     5           /* s: a batch is out */
#define NGX_HTTP_SMARTY_AUDIT_TIMEOUT   1000        /* ms: a batch's wait */


typedef struct {
    ngx_str_t                      key;       /* smarty_audit_stream */
    ngx_str_t                      limit;     /* maxlen=, as text */
    ngx_msec_t                     keep;      /* keep=, 0: maxlen */
    size_t                         buffer;    /* smarty_audit_buffer */
    ngx_str_t                      instance;  /* smarty_audit_instance */
    ngx_int_t                      request_id;  /* $request_id's index */
    ngx_shm_zone_t                *zone;
} ngx_http_smarty_audit_main_conf_t;


typedef struct {
    ngx_flag_t                     enable;    /* smarty_audit */
} ngx_http_smarty_audit_loc_conf_t;


typedef struct {
    uint32_t                       magic;
    ngx_atomic_t                   records;
    ngx_atomic_t                   written;
    ngx_atomic_t                   buffered;
    ngx_atomic_t                   dropped;
    ngx_atomic_t                   failures;
    ngx_pid_t                      flusher;   /* whose batch is out, 0 */
    time_t                         until;     /* its lease */
    uint64_t                       batch;     /* its records */
    smarty_ring_t                 *ring;
} ngx_http_smarty_audit_sh_t;


typedef struct {
    ngx_http_smarty_audit_sh_t    *sh;
    ngx_slab_pool_t               *shpool;
} ngx_http_smarty_audit_zone_t;


static void ngx_http_smarty_audit_record(ngx_http_request_t *r,
    ngx_http_smarty_audit_main_conf_t *amcf, smarty_audit_record_t *rec);
static void ngx_http_smarty_audit_push(ngx_http_smarty_audit_zone_t *z,
    u_char *p, size_t len, ngx_log_t *log);
static void ngx_http_smarty_audit_arm(ngx_msec_t delay);
static void ngx_http_smarty_audit_flush(ngx_event_t *ev);
static void ngx_http_smarty_audit_written(
    ngx_http_smarty_redis_status_e status, redisReply *reply, void *data);
static void ngx_http_smarty_audit_done(void);
static ngx_int_t ngx_http_smarty_audit_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_smarty_audit_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static char *ngx_http_smarty_audit_stream_conf(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static void *ngx_http_smarty_audit_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_smarty_audit_init_main_conf(ngx_conf_t *cf,
    void *conf);
static void *ngx_http_smarty_audit_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_smarty_audit_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_http_smarty_audit_init_process(ngx_cycle_t *cycle);


/* the worker's: its flush timer, its batch's commands out, sent, taken */
static ngx_event_t                         ngx_http_smarty_audit_ev;
static ngx_uint_t                          ngx_http_smarty_audit_out;
static ngx_uint_t                          ngx_http_smarty_audit_sent;
static ngx_uint_t                          ngx_http_smarty_audit_acked;
static ngx_uint_t                          ngx_http_smarty_audit_failed;
static ngx_http_smarty_audit_main_conf_t  *ngx_http_smarty_audit_conf;
static time_t                              ngx_http_smarty_audit_logged;


static ngx_command_t  ngx_http_smarty_audit_commands[] = {

    { ngx_string("smarty_audit_stream"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_smarty_audit_stream_conf,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("smarty_audit_buffer"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_smarty_audit_main_conf_t, buffer),
      NULL },

    { ngx_string("smarty_audit_instance"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_smarty_audit_main_conf_t, instance),
      NULL },

    { ngx_string("smarty_audit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_audit_loc_conf_t, enable),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_smarty_audit_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_smarty_audit_create_main_conf, /* create main configuration */
    ngx_http_smarty_audit_init_main_conf,  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_smarty_audit_create_loc_conf, /* create location configuration */
    ngx_http_smarty_audit_merge_loc_conf   /* merge location configuration */
};


ngx_module_t  ngx_http_smarty_audit_module = {
    NGX_MODULE_V1,
    &ngx_http_smarty_audit_module_ctx,     /* module context */
    ngx_http_smarty_audit_commands,        /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_smarty_audit_init_process,    /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


ngx_http_variable_t  ngx_http_smarty_audit_variables[] = {

    { ngx_string("smarty_instance"), NULL,
      ngx_http_smarty_audit_variable, 0, 0, 0 },

      ngx_http_null_variable
};


/* --- a finished request -------------------------------------------------- */


void
ngx_http_smarty_audit_finished(ngx_http_request_t *r)
{
    u_char                              buf[4096], *p;
    size_t                              len;
    smarty_audit_record_t               rec;
    ngx_http_smarty_audit_loc_conf_t   *alcf;
    ngx_http_smarty_audit_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_smarty_audit_module);
    alcf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_audit_module);

    if (amcf->zone == NULL || !alcf->enable) {
        return;
    }

    ngx_http_smarty_audit_record(r, amcf, &rec);

    p = buf;
    len = smarty_audit_json(&rec, (char *) buf, sizeof(buf));

    if (len >= sizeof(buf)) {
        /* a hundred images' digests */
        p = ngx_pnalloc(r->pool, len + 1);
        if (p == NULL) {
            return;
        }

        (void) smarty_audit_json(&rec, (char *) p, len + 1);
    }

    ngx_http_smarty_audit_push(amcf->zone->data, p, len, r->connection->log);
}


/* what the request came to: the public context, and what the concerns
 * tell of it */

static void
ngx_http_smarty_audit_record(ngx_http_request_t *r,
    ngx_http_smarty_audit_main_conf_t *amcf, smarty_audit_record_t *rec)
{
    ngx_uint_t                        hits;
    const char                       *cache;
    ngx_time_t                       *tp;
    ngx_msec_int_t                    ms;
    ngx_http_smarty_ctx_t            *ctx;
    ngx_http_variable_value_t        *id;
    ngx_http_smarty_quota_outcome_t   q;

    ctx = ngx_http_smarty_ctx(r);

    ngx_memzero(rec, sizeof(smarty_audit_record_t));

    tp = ngx_timeofday();
    rec->time_ms = (int64_t) tp->sec * 1000 + tp->msec;

    id = ngx_http_get_indexed_variable(r, amcf->request_id);

    if (id != NULL && !id->not_found) {
        rec->id = (const char *) id->data;
        rec->id_len = id->len;
    }

    rec->instance = (const char *) amcf->instance.data;
    rec->instance_len = amcf->instance.len;

    if (ctx->client) {
        rec->client = (const char *) ctx->client->name.data;
        rec->client_len = ctx->client->name.len;
    }

    rec->method = ctx->method ? ctx->method->path : NULL;
    rec->meta = ctx->m_valid ? &ctx->m : NULL;

    rec->nimages = ctx->parts.nelts;
    rec->sha256 = ctx->parts.nelts
                  ? ((ngx_http_smarty_part_t *) ctx->parts.elts)->sha256
                  : NULL;
    rec->sha256_stride = sizeof(ngx_http_smarty_part_t);

    if (ngx_http_smarty_cache_outcome(r, &hits, &cache)
        != NGX_HTTP_SMARTY_CACHE_NOT_USED)
    {
        rec->cache = cache;
        rec->cache_hits = hits;
    }

    ngx_http_smarty_quota_outcome(r, &q);

    rec->quota = q.status ? q.text : NULL;
    rec->quota_remaining = -1;

    if (q.decided) {
        rec->quota_limit = ngx_pnalloc(r->pool, sizeof(q.limit));
        if (rec->quota_limit != NULL) {
            ngx_memcpy((char *) rec->quota_limit, q.limit, sizeof(q.limit));
        }

        rec->quota_remaining = (int64_t) q.remaining;
    }

    rec->upstream_status = (int) ctx->up_status;
    rec->upstream_ms = ngx_http_smarty_upstream_time(r);

    rec->status = (int) ctx->status;

    if (ctx->error.err != SMARTY_OK) {
        rec->error = ctx->error.code ? ctx->error.code
                                     : smarty_err_info(ctx->error.err)->code;
    }

    rec->bytes_in = (uint64_t) r->request_length;
    rec->bytes_out = (uint64_t) r->connection->sent;

    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));
    rec->duration_ms = ngx_max(ms, 0);
}


static void
ngx_http_smarty_audit_push(ngx_http_smarty_audit_zone_t *z, u_char *p,
    size_t len, ngx_log_t *log)
{
    uint64_t   newly;
    ngx_int_t  rc, away;

    away = (ngx_http_smarty_redis_state() != NGX_HTTP_SMARTY_REDIS_OK);
    newly = 0;

    ngx_shmtx_lock(&z->shpool->mutex);

    rc = smarty_ring_push(z->sh->ring, p, len);

    if (rc == 0 && away) {
        /* Redis is away: the record waits, counted once */
        newly = smarty_ring_mark(z->sh->ring, (uint64_t) -1);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    (void) ngx_atomic_fetch_add(&z->sh->records, 1);

    if (newly) {
        (void) ngx_atomic_fetch_add(&z->sh->buffered, newly);
    }

    if (rc != 0) {
        (void) ngx_atomic_fetch_add(&z->sh->dropped, 1);

        /* once a second at most: the metrics count every one */
        if (ngx_http_smarty_audit_logged != ngx_time()) {
            ngx_http_smarty_audit_logged = ngx_time();
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "smarty_audit: the buffer is full, records are "
                          "dropped (smarty_audit_buffer)");
        }

        return;
    }

    if (!ngx_http_smarty_audit_out) {
        ngx_http_smarty_audit_arm(NGX_HTTP_SMARTY_AUDIT_DELAY);
    }
}


/* --- to Redis ------------------------------------------------------------ */


static void
ngx_http_smarty_audit_arm(ngx_msec_t delay)
{
    ngx_event_t  *ev;

    ev = &ngx_http_smarty_audit_ev;

    if (ev->timer_set || ngx_exiting) {
        return;
    }

    ngx_add_timer(ev, delay);
}


static void
ngx_http_smarty_audit_flush(ngx_event_t *ev)
{
    size_t                              len, bytes, n;
    int64_t                             cut;
    uint64_t                            pos, newly;
    ngx_uint_t                          i;
    ngx_time_t                         *tp;
    const u_char                       *p;
    ngx_http_smarty_audit_sh_t         *sh;
    ngx_http_smarty_audit_zone_t       *z;
    ngx_http_smarty_audit_main_conf_t  *amcf;
    u_char                              minid[NGX_INT64_LEN];
    const u_char                       *rec[NGX_HTTP_SMARTY_AUDIT_BATCH];
    size_t                              reclen[NGX_HTTP_SMARTY_AUDIT_BATCH];
    const char                         *argv[8];
    size_t                              argvlen[8];

    amcf = ngx_http_smarty_audit_conf;

    if (amcf == NULL || amcf->zone == NULL || ngx_http_smarty_audit_out) {
        return;
    }

    z = amcf->zone->data;
    sh = z->sh;

    ngx_shmtx_lock(&z->shpool->mutex);

    if (sh->ring->count == 0) {
        ngx_shmtx_unlock(&z->shpool->mutex);
        return;
    }

    if (ngx_http_smarty_redis_state() != NGX_HTTP_SMARTY_REDIS_OK) {
        /* Redis is away: what waits is kept, counted once */
        newly = smarty_ring_mark(sh->ring, (uint64_t) -1);
        ngx_shmtx_unlock(&z->shpool->mutex);

        (void) ngx_atomic_fetch_add(&sh->buffered, newly);
        ngx_http_smarty_audit_arm(NGX_HTTP_SMARTY_AUDIT_RETRY);
        return;
    }

    if (sh->flusher != 0 && sh->until >= ngx_time()) {
        /* another worker's batch is out: it goes on after it */
        ngx_shmtx_unlock(&z->shpool->mutex);
        ngx_http_smarty_audit_arm(NGX_HTTP_SMARTY_AUDIT_RETRY);
        return;
    }

    /* the oldest records: this worker's until Redis answers for them */

    n = 0;
    bytes = 0;
    pos = sh->ring->head;

    while (n < NGX_HTTP_SMARTY_AUDIT_BATCH
           && bytes < NGX_HTTP_SMARTY_AUDIT_BYTES
           && smarty_ring_next(sh->ring, &pos, &p, &len) == 0)
    {
        rec[n] = p;
        reclen[n] = len;
        n++;
        bytes += len;
    }

    sh->flusher = ngx_pid;
    sh->until = ngx_time() + NGX_HTTP_SMARTY_AUDIT_LEASE;
    sh->batch = n;

    ngx_shmtx_unlock(&z->shpool->mutex);

    /*
     * They stay where they are: only the lease's holder takes records
     * from the ring, and others only append behind them.  One XADD each,
     * pipelined on the worker's connection: Redis spends a microsecond
     * on one, a script's calls cost it several times that.
     */

    argv[0] = "XADD";
    argvlen[0] = 4;
    argv[1] = (const char *) amcf->key.data;
    argvlen[1] = amcf->key.len;
    argv[3] = "~";
    argvlen[3] = 1;
    argv[5] = "*";
    argvlen[5] = 1;
    argv[6] = "r";
    argvlen[6] = 1;

    if (amcf->keep) {
        /* MINID ~ now - keep, by this gateway's clock */
        tp = ngx_timeofday();
        cut = (int64_t) tp->sec * 1000 + (int64_t) tp->msec
              - (int64_t) amcf->keep;
        argv[2] = "MINID";
        argvlen[2] = 5;
        argv[4] = (const char *) minid;
        argvlen[4] = ngx_sprintf(minid, "%L", cut > 0 ? cut : 0) - minid;

    } else {
        argv[2] = "MAXLEN";
        argvlen[2] = 6;
        argv[4] = (const char *) amcf->limit.data;
        argvlen[4] = amcf->limit.len;
    }

    ngx_http_smarty_audit_sent = n;
    ngx_http_smarty_audit_acked = 0;
    ngx_http_smarty_audit_failed = 0;

    for (i = 0; i < n; i++) {
        argv[7] = (const char *) rec[i];
        argvlen[7] = reclen[i];

        if (ngx_http_smarty_redis_command(NGX_HTTP_SMARTY_AUDIT_TIMEOUT,
                                          ngx_http_smarty_audit_written,
                                          (void *) (uintptr_t) i, 8, argv,
                                          argvlen)
            == NULL)
        {
            /* out of memory: the rest waits for the next batch */
            ngx_http_smarty_audit_failed = 1;
            break;
        }

        ngx_http_smarty_audit_out++;
    }

    if (ngx_http_smarty_audit_out == 0) {
        ngx_http_smarty_audit_done();
    }
}


/* one record's XADD: the batch is done when the last one is answered */

static void
ngx_http_smarty_audit_written(ngx_http_smarty_redis_status_e status,
    redisReply *reply, void *data)
{
    ngx_uint_t  i;

    i = (ngx_uint_t) (uintptr_t) data;

    ngx_http_smarty_audit_out--;

    if (status == NGX_HTTP_SMARTY_REDIS_OK
        && reply->type == REDIS_REPLY_STRING)
    {
        /* Redis took it: the records before it too, they were sent first */
        if (i == ngx_http_smarty_audit_acked) {
            ngx_http_smarty_audit_acked++;
        }

    } else {
        if (status == NGX_HTTP_SMARTY_REDIS_OK
            && !ngx_http_smarty_audit_failed)
        {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "smarty_audit: Redis did not take a record: %*s",
                          reply->type == REDIS_REPLY_ERROR
                          ? ngx_min(reply->len, 200) : 0, reply->str);
        }

        ngx_http_smarty_audit_failed = 1;
    }

    if (ngx_http_smarty_audit_out == 0) {
        ngx_http_smarty_audit_done();
    }
}


/*
 * The batch is over: the records Redis took, in order from the first,
 * leave the ring; the others wait for the next batch, counted once as
 * buffered (one that was taken after one that was not is sent again: at
 * least once, never lost).
 */

static void
ngx_http_smarty_audit_done(void)
{
    uint64_t                       newly, left, acked, sent;
    ngx_uint_t                     failed;
    ngx_http_smarty_audit_sh_t    *sh;
    ngx_http_smarty_audit_zone_t  *z;

    z = ngx_http_smarty_audit_conf->zone->data;
    sh = z->sh;

    acked = ngx_http_smarty_audit_acked;
    sent = ngx_http_smarty_audit_sent;
    failed = ngx_http_smarty_audit_failed || acked < sent;
    newly = 0;

    ngx_shmtx_lock(&z->shpool->mutex);

    if (sh->flusher == ngx_pid) {
        /* still this worker's batch: no other worker took it over */
        smarty_ring_pop(sh->ring, acked);

        if (acked < sent) {
            newly = smarty_ring_mark(sh->ring, sent - acked);
        }

        sh->flusher = 0;
    }

    left = sh->ring->count;

    ngx_shmtx_unlock(&z->shpool->mutex);

    (void) ngx_atomic_fetch_add(&sh->written, acked);

    if (failed) {
        (void) ngx_atomic_fetch_add(&sh->failures, 1);
        (void) ngx_atomic_fetch_add(&sh->buffered, newly);
    }

    if (left) {
        ngx_http_smarty_audit_arm(failed ? NGX_HTTP_SMARTY_AUDIT_RETRY : 1);
    }
}


ngx_int_t
ngx_http_smarty_audit_stats(ngx_http_smarty_audit_stats_t *st)
{
    ngx_http_smarty_audit_sh_t         *sh;
    ngx_http_smarty_audit_zone_t       *z;
    ngx_http_smarty_audit_main_conf_t  *amcf;

    amcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_smarty_audit_module);

    if (amcf == NULL || amcf->zone == NULL) {
        return NGX_DECLINED;
    }

    z = amcf->zone->data;
    sh = z->sh;

    st->records = sh->records;
    st->written = sh->written;
    st->buffered = sh->buffered;
    st->dropped = sh->dropped;
    st->failures = sh->failures;

    ngx_shmtx_lock(&z->shpool->mutex);
    st->pending = sh->ring->count;
    st->pending_bytes = smarty_ring_used(sh->ring);
    st->capacity_bytes = sh->ring->size;
    ngx_shmtx_unlock(&z->shpool->mutex);

    return NGX_OK;
}


ngx_str_t *
ngx_http_smarty_audit_stream(ngx_http_request_t *r)
{
    ngx_http_smarty_audit_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_smarty_audit_module);

    return &amcf->key;
}


ngx_str_t *
ngx_http_smarty_audit_conf_stream(ngx_conf_t *cf)
{
    ngx_http_smarty_audit_main_conf_t  *amcf;

    amcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_smarty_audit_module);

    return &amcf->key;
}


/* $smarty_instance: the name records carry */

static ngx_int_t
ngx_http_smarty_audit_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_smarty_audit_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_smarty_audit_module);

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = amcf->instance.data;
    v->len = amcf->instance.len;

    return NGX_OK;
}


/* --- the zone ------------------------------------------------------------ */


static ngx_int_t
ngx_http_smarty_audit_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_smarty_audit_zone_t *oz = data;

    size_t                         size;
    void                          *mem;
    ngx_http_smarty_audit_zone_t  *z;

    z = shm_zone->data;

    if (oz && oz->sh->magic == NGX_HTTP_SMARTY_AUDIT_MAGIC) {
        /* a reload with the zone kept: what waits is still sent */
        z->sh = oz->sh;
        z->shpool = oz->shpool;
        return NGX_OK;
    }

    z->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        z->sh = z->shpool->data;
        return NGX_OK;
    }

    z->sh = ngx_slab_calloc(z->shpool, sizeof(ngx_http_smarty_audit_sh_t));
    if (z->sh == NULL) {
        return NGX_ERROR;
    }

    z->shpool->data = z->sh;
    z->shpool->log_nomem = 0;

    /* the ring: every page left, less one for the slab's own needs */

    size = (z->shpool->pfree > 1) ? (z->shpool->pfree - 1) * ngx_pagesize
                                  : 0;

    mem = ngx_slab_alloc(z->shpool, size);
    z->sh->ring = smarty_ring_init(mem, size);

    if (z->sh->ring == NULL) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "smarty_audit: no room for the buffer in a zone of "
                      "%uz bytes", shm_zone->shm.size);
        return NGX_ERROR;
    }

    z->sh->magic = NGX_HTTP_SMARTY_AUDIT_MAGIC;

    return NGX_OK;
}


/* --- configuration ------------------------------------------------------- */


/* smarty_audit_stream key [maxlen=N | keep=time] */

static char *
ngx_http_smarty_audit_stream_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_smarty_audit_main_conf_t *amcf = conf;

    u_char     *p;
    ngx_int_t   n;
    ngx_str_t  *value, s;

    if (amcf->key.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        return "needs a key";
    }

    amcf->key = value[1];
    ngx_str_set(&amcf->limit, "100000");

    if (cf->args->nelts == 2) {
        return NGX_CONF_OK;
    }

    p = ngx_pnalloc(cf->pool, NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_strncmp(value[2].data, "maxlen=", 7) == 0) {
        n = ngx_atoi(value[2].data + 7, value[2].len - 7);

        if (n == NGX_ERROR || n < 1) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"smarty_audit_stream\": invalid \"%V\", "
                               "maxlen must be a number of 1 or more",
                               &value[2]);
            return NGX_CONF_ERROR;
        }

        amcf->limit.data = p;
        amcf->limit.len = ngx_sprintf(p, "%i", n) - p;

        return NGX_CONF_OK;
    }

    if (ngx_strncmp(value[2].data, "keep=", 5) == 0) {
        s.data = value[2].data + 5;
        s.len = value[2].len - 5;

        n = ngx_parse_time(&s, 0);

        if (n == NGX_ERROR || n == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"smarty_audit_stream\": invalid \"%V\", "
                               "keep must be a time above 0 (\"7d\", "
                               "\"12h\")", &value[2]);
            return NGX_CONF_ERROR;
        }

        amcf->keep = (ngx_msec_t) n;

        return NGX_CONF_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"smarty_audit_stream\": unknown parameter \"%V\" "
                       "(maxlen=N or keep=time)", &value[2]);

    return NGX_CONF_ERROR;
}


static void *
ngx_http_smarty_audit_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_smarty_audit_main_conf_t  *amcf;

    amcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_audit_main_conf_t));
    if (amcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     amcf->key = { 0, NULL };
     *     amcf->instance = { 0, NULL };
     *     amcf->zone = NULL;
     */

    amcf->buffer = NGX_CONF_UNSET_SIZE;

    return amcf;
}


static char *
ngx_http_smarty_audit_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_smarty_audit_main_conf_t *amcf = conf;

    ngx_str_t                      name;
    ngx_http_smarty_audit_zone_t  *z;

    ngx_conf_init_size_value(amcf->buffer, 1024 * 1024);

    if (amcf->instance.data == NULL) {
        amcf->instance = cf->cycle->hostname;
    }

    if (amcf->key.len == 0) {
        return NGX_CONF_OK;
    }

    if (amcf->buffer < 64 * 1024) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_audit_buffer\" must be at least 64k");
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&name, "request_id");

    amcf->request_id = ngx_http_get_variable_index(cf, &name);
    if (amcf->request_id == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&name, "smarty_audit");

    amcf->zone = ngx_shared_memory_add(cf, &name, amcf->buffer,
                                       &ngx_http_smarty_audit_module);
    if (amcf->zone == NULL) {
        return NGX_CONF_ERROR;
    }

    z = ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_audit_zone_t));
    if (z == NULL) {
        return NGX_CONF_ERROR;
    }

    amcf->zone->init = ngx_http_smarty_audit_init_zone;
    amcf->zone->data = z;

    return NGX_CONF_OK;
}


static void *
ngx_http_smarty_audit_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_smarty_audit_loc_conf_t  *alcf;

    alcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_audit_loc_conf_t));
    if (alcf == NULL) {
        return NULL;
    }

    alcf->enable = NGX_CONF_UNSET;

    return alcf;
}


static char *
ngx_http_smarty_audit_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_smarty_audit_loc_conf_t *prev = parent;
    ngx_http_smarty_audit_loc_conf_t *conf = child;

    ngx_conf_merge_value(conf->enable, prev->enable, 1);

    return NGX_CONF_OK;
}


/* --- the worker ---------------------------------------------------------- */


static ngx_int_t
ngx_http_smarty_audit_init_process(ngx_cycle_t *cycle)
{
    ngx_http_smarty_audit_main_conf_t  *amcf;

    amcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_smarty_audit_module);

    ngx_http_smarty_audit_conf = amcf;
    ngx_http_smarty_audit_out = 0;

    if (amcf == NULL || amcf->zone == NULL) {
        return NGX_OK;
    }

    ngx_http_smarty_audit_ev.handler = ngx_http_smarty_audit_flush;
    ngx_http_smarty_audit_ev.log = cycle->log;
    ngx_http_smarty_audit_ev.data = amcf;
    ngx_http_smarty_audit_ev.cancelable = 1;

    /* what an earlier generation of workers left in the zone */
    ngx_http_smarty_audit_arm(NGX_HTTP_SMARTY_AUDIT_DELAY);

    return NGX_OK;
}
