/*
 * smarty-gateway: the OAuth token source's state and its fetch, private to
 * the source's two files (docs/token.md): ngx_http_smarty_token_fetch.c (a
 * fetch: Redis, the thread pool, the token stored for every worker) and,
 * above it, ngx_http_smarty_token_oauth.c (the module and its directive,
 * the source's interface, the requests that wait).
 */

#ifndef NGX_HTTP_SMARTY_TOKEN_FETCH_H
#define NGX_HTTP_SMARTY_TOKEN_FETCH_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_smarty_token.h"
#include "ngx_http_smarty_redis.h"
#include "smarty_oauth.h"


#if !(NGX_THREADS)
#error "smarty_upstream_oauth needs nginx --with-threads (Debian's has it)"
#endif


#define SMARTY_OAUTH_POLL        20        /* ms: a waiting worker looks */
#define SMARTY_OAUTH_LOCK_POLL   50        /* ms: another instance fetches */
#define SMARTY_OAUTH_CAP_VALID   30000     /* ms: backoff, a token left */
#define SMARTY_OAUTH_CAP_NONE    5000      /* ms: backoff, none left */
#define SMARTY_OAUTH_FRESH       5000      /* ms: a token refused younger
                                              than this counts as a failure
                                              of the fetch */
#define SMARTY_OAUTH_KEEP_TEXT   "86400000"  /* ms: Redis keeps the
                                              refresh token a day after the
                                              access token's expiry */
#define SMARTY_OAUTH_ID_MAX      256       /* the client id */
#define SMARTY_OAUTH_SECRET_MAX  1024


/* the instance's token, in the source's shared memory */

typedef struct {
    ngx_uint_t                 version;      /* a new token: + 1 */
    int64_t                    obtained;     /* Unix ms */
    int64_t                    expires;      /* Unix ms; 0: none */
    int64_t                    refresh_at;   /* Unix ms */

    ngx_pid_t                  fetcher;      /* the worker fetching, 0 */
    int64_t                    fetch_deadline;
    int64_t                    next_try;     /* after a failure */
    ngx_uint_t                 failing;      /* failures in a row */
    ngx_uint_t                 hopeless;     /* the endpoint refused the
                                                client's credentials */
    u_char                     secret_id[SMARTY_OAUTH_ID_LEN + 1];

    ngx_uint_t                 fetches;
    ngx_uint_t                 refreshes;
    ngx_uint_t                 adopted;
    ngx_uint_t                 failures;
    ngx_uint_t                 rejected;
    ngx_uint_t                 waits;
    ngx_uint_t                 wait_timeouts;

    size_t                     access_len;
    size_t                     escaped_len;
    size_t                     refresh_len;
    u_char                     refused[SMARTY_OAUTH_ID_LEN + 1];
    u_char                     access[SMARTY_OAUTH_TOKEN_MAX];
    u_char                     escaped[3 * SMARTY_OAUTH_TOKEN_MAX];
    u_char                     refresh[SMARTY_OAUTH_TOKEN_MAX];
    u_char                     error[SMARTY_OAUTH_ERROR_MAX];
} ngx_http_smarty_oauth_sh_t;


typedef struct ngx_http_smarty_oauth_s  ngx_http_smarty_oauth_t;


/* a fetch, as the thread sees it: nothing of nginx's */

typedef struct {
    ngx_http_smarty_oauth_t   *src;
    smarty_oauth_request_t     req;
    int64_t                    started;      /* Unix ms */
    char                       refresh[SMARTY_OAUTH_TOKEN_MAX + 1];
    smarty_oauth_result_t      res;
} ngx_http_smarty_oauth_job_t;


struct ngx_http_smarty_oauth_s {
    ngx_http_smarty_token_source_t   source;

    ngx_str_t                        url;       /* NUL-terminated */
    ngx_str_t                        client_id;
    ngx_str_t                        secret;    /* never logged */
    ngx_str_t                        ca_file;
    ngx_msec_t                       wait;
    ngx_msec_t                       timeout;
    ngx_msec_t                       connect_timeout;
    ngx_flag_t                       shared;
    ngx_thread_pool_t               *pool;

    ngx_shm_zone_t                  *zone;
    ngx_slab_pool_t                 *shpool;
    ngx_http_smarty_oauth_sh_t      *sh;

    u_char                           secret_id[SMARTY_OAUTH_ID_LEN + 1];
    ngx_str_t                        key;        /* Redis: the token */
    ngx_str_t                        lock;       /* Redis: the lock */
    u_char                           seal[SMARTY_OAUTH_KEY_LEN];

    /* this worker's */
    ngx_queue_t                      waiters;
    ngx_event_t                      poll;
    ngx_event_t                      again;      /* the lock elsewhere */
    ngx_thread_task_t               *task;
    ngx_http_smarty_redis_cmd_t     *cmd;
    ngx_uint_t                       serial;
    int64_t                          lock_since;
    u_char                           owner[64];
    size_t                           owner_len;
    unsigned                         fetching:1;  /* this worker fetches */
    unsigned                         locked:1;    /* holds the Redis lock */
    unsigned                         running:1;   /* the task is posted */
};


/*
 * This worker fetches a token for src, having claimed the fetch in shared
 * memory (sh->fetcher): from another instance through Redis, or from the
 * endpoint.  When it ends, the token or the failure and the next try are
 * in shared memory, and the worker's waiting requests are woken (src->poll
 * is posted).
 */
void ngx_http_smarty_oauth_fetch(ngx_http_smarty_oauth_t *src);

/* the worker's task and timer of src's fetches */
ngx_int_t ngx_http_smarty_oauth_fetch_init(ngx_http_smarty_oauth_t *src,
    ngx_cycle_t *cycle);

/* Unix milliseconds, nginx's cached time */
int64_t ngx_http_smarty_oauth_now(void);


extern ngx_module_t  ngx_http_smarty_token_oauth_module;

#endif /* NGX_HTTP_SMARTY_TOKEN_FETCH_H */
