/*
 * smarty-gateway: Redis on nginx's event loop (hiredis 0.14's async API).
 *
 * One connection per worker, persistent and pipelined:
 *
 *   - it is opened when the worker starts and, whenever it is lost or
 *     cannot be opened, again after a backoff (50ms doubling to 2s, with
 *     jitter) driven by a timer, whether or not commands come;
 *   - the handshake (AUTH, SELECT, PING) is sent first; the connection is
 *     "ready" when PING's reply comes, all within smarty_redis_connect_timeout;
 *     commands issued meanwhile are queued behind the handshake;
 *   - the hiredis socket is wrapped in an ngx_connection_t whose events are
 *     registered level-triggered: hiredis reads one 16k buffer per call, and
 *     with nginx's usual edge-triggered epoll the bytes left in the socket
 *     would raise no further event;
 *   - hiredis frees the context (error, EOF, our redisAsyncFree()) in this
 *     order: the pending callbacks with a NULL reply, the "cleanup" hook,
 *     then it closes the socket.  The cleanup hook gives the
 *     ngx_connection_t back (its events deleted, not its fd) and schedules
 *     the reconnection.
 *
 * Every command has its own timer.  A command's outcome is decided once,
 * by the first of: its reply, its timer, the loss of the connection; the
 * caller's handler is called then (or, for a command refused at once, from
 * a posted event).  The command's struct belongs to nobody else: it is
 * freed when hiredis no longer holds it, its timer is gone and its caller
 * was answered or cancelled it.
 *
 * The circuit breaker counts consecutive failures (timeouts, a lost
 * connection); at smarty_redis_breaker's "failures" it opens: commands are
 * refused at once for "cooldown", then one probe goes through; its success
 * closes the breaker, its failure opens it again.  A new connection whose
 * handshake succeeds closes it too.
 */

#include "ngx_http_smarty_redis.h"
#include "ngx_http_smarty_secret.h"

#include <hiredis/async.h>
#include <openssl/evp.h>


#define NGX_HTTP_SMARTY_REDIS_BACKOFF_MIN  50
#define NGX_HTTP_SMARTY_REDIS_BACKOFF_MAX  2000
#define NGX_HTTP_SMARTY_REDIS_PASSWORD_MAX 1024

#define NGX_HTTP_SMARTY_REDIS_HEALTH_KEY   "smarty:health"



typedef struct {
    ngx_str_t                   addr;         /* as configured, for logs */
    ngx_str_t                   host;         /* numeric IP or unix path,
                                                 null-terminated */
    ngx_int_t                   port;         /* 0: a unix socket */
    ngx_str_t                   password;     /* never logged */
    ngx_int_t                   db;
    ngx_msec_t                  timeout;
    ngx_msec_t                  connect_timeout;
    ngx_int_t                   breaker_failures;  /* 0: no breaker */
    ngx_msec_t                  breaker_cooldown;
} ngx_http_smarty_redis_main_conf_t;


typedef struct {
    size_t                      allow_size;   /* health's "?size=" limit */
} ngx_http_smarty_redis_loc_conf_t;


typedef enum {
    NGX_HTTP_SMARTY_REDIS_DOWN = 0,
    NGX_HTTP_SMARTY_REDIS_CONNECTING,
    NGX_HTTP_SMARTY_REDIS_READY
} ngx_http_smarty_redis_conn_state_e;


typedef enum {
    NGX_HTTP_SMARTY_REDIS_CLOSED = 0,
    NGX_HTTP_SMARTY_REDIS_OPEN,
    NGX_HTTP_SMARTY_REDIS_HALF_OPEN           /* the probe is out */
} ngx_http_smarty_redis_breaker_e;


typedef enum {
    NGX_HTTP_SMARTY_REDIS_AUTH = 1,
    NGX_HTTP_SMARTY_REDIS_SELECT,
    NGX_HTTP_SMARTY_REDIS_PING
} ngx_http_smarty_redis_step_e;


/* the worker's connection: one per process, so a static */

typedef struct {
    ngx_http_smarty_redis_main_conf_t  *conf;    /* NULL: no Redis */
    ngx_log_t                          *log;

    redisAsyncContext                  *ac;
    ngx_connection_t                   *c;
    ngx_http_smarty_redis_conn_state_e  state;

    ngx_event_t                         reconnect;
    ngx_event_t                         connect_timer;
    ngx_event_t                         kill;    /* posted: free the context
                                                    outside of hiredis */
    ngx_msec_t                          backoff;

    ngx_http_smarty_redis_breaker_e     breaker;
    ngx_int_t                           failures;
    ngx_msec_t                          open_until;

    ngx_uint_t                          noscript;     /* logged, bit n:
                                                         script n */
    char                                why[128];     /* when we free */
    char                                logged[128];  /* last down reason
                                                         logged */
    unsigned                            was_up:1;
    unsigned                            exiting:1;
} ngx_http_smarty_redis_worker_t;


struct ngx_http_smarty_redis_cmd_s {
    ngx_event_t                         ev;      /* timer, posted answer */
    ngx_http_smarty_redis_handler_pt    handler;
    void                               *data;
    ngx_http_smarty_redis_status_e      status;  /* for the posted answer */

    /* a script's EVALSHA, kept for the EVAL after NOSCRIPT */
    ngx_uint_t                          script;
    int                                 argc;
    const char                        **argv;
    size_t                             *argvlen;

    unsigned                            user:1;      /* handler owed */
    unsigned                            in_redis:1;  /* hiredis holds it */
    unsigned                            decided:1;
    unsigned                            probe:1;
    unsigned                            is_script:1;
    unsigned                            retried:1;
    unsigned                            calling:1;   /* in the handler */
};


typedef struct {
    ngx_http_request_t                 *request;
    ngx_http_smarty_redis_cmd_t        *cmd;
    ngx_msec_t                          start;
    size_t                              size;
    unsigned                            sized:1;
    u_char                              token[NGX_INT64_LEN * 2 + 2];
    size_t                              token_len;
} ngx_http_smarty_redis_health_ctx_t;


static void ngx_http_smarty_redis_send(ngx_http_smarty_redis_cmd_t *cmd,
    ngx_msec_t timeout, int argc, const char **argv, const size_t *argvlen);
static ngx_http_smarty_redis_status_e ngx_http_smarty_redis_admit(
    ngx_uint_t *probe);
static void ngx_http_smarty_redis_refuse(ngx_http_smarty_redis_cmd_t *cmd,
    ngx_http_smarty_redis_status_e status);
static void ngx_http_smarty_redis_cmd_event(ngx_event_t *ev);
static void ngx_http_smarty_redis_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_smarty_redis_decide(ngx_http_smarty_redis_cmd_t *cmd,
    ngx_http_smarty_redis_status_e status, redisReply *reply);
static void ngx_http_smarty_redis_release(ngx_http_smarty_redis_cmd_t *cmd);
static void ngx_http_smarty_redis_account(ngx_uint_t probe, ngx_uint_t ok);
static void ngx_http_smarty_redis_breaker_close(void);

static void ngx_http_smarty_redis_connect(void);
static void ngx_http_smarty_redis_schedule(void);
static void ngx_http_smarty_redis_log_down(ngx_uint_t level,
    const char *what, const char *why);
static void ngx_http_smarty_redis_abort(const char *why);
static void ngx_http_smarty_redis_reconnect_handler(ngx_event_t *ev);
static void ngx_http_smarty_redis_connect_timer_handler(ngx_event_t *ev);
static void ngx_http_smarty_redis_kill_handler(ngx_event_t *ev);
static void ngx_http_smarty_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_http_smarty_redis_handshake(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_smarty_redis_read_handler(ngx_event_t *rev);
static void ngx_http_smarty_redis_write_handler(ngx_event_t *wev);
static void ngx_http_smarty_redis_add_read(void *privdata);
static void ngx_http_smarty_redis_del_read(void *privdata);
static void ngx_http_smarty_redis_add_write(void *privdata);
static void ngx_http_smarty_redis_del_write(void *privdata);
static void ngx_http_smarty_redis_cleanup(void *privdata);

static ngx_int_t ngx_http_smarty_redis_health_handler(ngx_http_request_t *r);
static void ngx_http_smarty_redis_health_done(
    ngx_http_smarty_redis_status_e status, redisReply *reply, void *data);
static ngx_int_t ngx_http_smarty_redis_health_send(ngx_http_request_t *r,
    ngx_http_smarty_redis_health_ctx_t *ctx,
    ngx_http_smarty_redis_status_e status, redisReply *reply);
static void ngx_http_smarty_redis_health_cleanup(void *data);

static void *ngx_http_smarty_redis_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_smarty_redis_init_main_conf(ngx_conf_t *cf,
    void *conf);
static void *ngx_http_smarty_redis_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_smarty_redis_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_smarty_redis_server(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_smarty_redis_password_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_smarty_redis_breaker(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_smarty_redis_health(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_smarty_redis_positive_msec(ngx_conf_t *cf, void *post,
    void *data);
static ngx_int_t ngx_http_smarty_redis_init_process(ngx_cycle_t *cycle);
static void ngx_http_smarty_redis_exit_process(ngx_cycle_t *cycle);


static ngx_http_smarty_redis_worker_t  ngx_http_smarty_redis_worker;

/* the embedded scripts' SHA1s, hex, computed with the configuration */
static char  ngx_http_smarty_redis_sha1[NGX_HTTP_SMARTY_REDIS_LUA_N][41];

static ngx_uint_t  ngx_http_smarty_redis_health_serial;


static ngx_conf_post_handler_pt  ngx_http_smarty_redis_positive_msec_p =
    ngx_http_smarty_redis_positive_msec;


static ngx_command_t  ngx_http_smarty_redis_commands[] = {

    { ngx_string("smarty_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_smarty_redis_server,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("smarty_redis_password_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_smarty_redis_password_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("smarty_redis_db"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_smarty_redis_main_conf_t, db),
      NULL },

    { ngx_string("smarty_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_smarty_redis_main_conf_t, timeout),
      &ngx_http_smarty_redis_positive_msec_p },

    { ngx_string("smarty_redis_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_smarty_redis_main_conf_t, connect_timeout),
      &ngx_http_smarty_redis_positive_msec_p },

    { ngx_string("smarty_redis_breaker"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_smarty_redis_breaker,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("smarty_redis_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_smarty_redis_health,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_smarty_redis_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_smarty_redis_create_main_conf, /* create main configuration */
    ngx_http_smarty_redis_init_main_conf,  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_smarty_redis_create_loc_conf, /* create location configuration */
    ngx_http_smarty_redis_merge_loc_conf   /* merge location configuration */
};


ngx_module_t  ngx_http_smarty_redis_module = {
    NGX_MODULE_V1,
    &ngx_http_smarty_redis_module_ctx,     /* module context */
    ngx_http_smarty_redis_commands,        /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_smarty_redis_init_process,    /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_smarty_redis_exit_process,    /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* --- the command API ----------------------------------------------------- */


ngx_http_smarty_redis_cmd_t *
ngx_http_smarty_redis_command(ngx_msec_t timeout,
    ngx_http_smarty_redis_handler_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen)
{
    ngx_http_smarty_redis_cmd_t  *cmd;

    if (argc < 1 || argv == NULL || argvlen == NULL || handler == NULL) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "smarty_redis: a command without arguments");
        return NULL;
    }

    cmd = ngx_calloc(sizeof(ngx_http_smarty_redis_cmd_t), ngx_cycle->log);
    if (cmd == NULL) {
        return NULL;
    }

    cmd->handler = handler;
    cmd->data = data;
    cmd->user = 1;
    cmd->ev.data = cmd;
    cmd->ev.handler = ngx_http_smarty_redis_cmd_event;
    cmd->ev.log = ngx_cycle->log;

    ngx_http_smarty_redis_send(cmd, timeout, argc, argv, argvlen);

    return cmd;
}


ngx_http_smarty_redis_cmd_t *
ngx_http_smarty_redis_script(ngx_uint_t script, ngx_msec_t timeout,
    ngx_http_smarty_redis_handler_pt handler, void *data, int nkeys,
    int argc, const char **argv, const size_t *argvlen)
{
    int                           i, n;
    u_char                       *p;
    size_t                        size;
    ngx_http_smarty_redis_cmd_t  *cmd;

    if (script >= NGX_HTTP_SMARTY_REDIS_LUA_N || nkeys < 0 || argc < nkeys
        || (argc > 0 && (argv == NULL || argvlen == NULL)) || handler == NULL)
    {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "smarty_redis: a script call with bad arguments");
        return NULL;
    }

    /* the struct, then EVALSHA's argv, argvlen, nkeys' text, the bytes */

    n = argc + 3;

    size = sizeof(ngx_http_smarty_redis_cmd_t)
           + n * (sizeof(char *) + sizeof(size_t)) + NGX_INT_T_LEN + 1;

    for (i = 0; i < argc; i++) {
        size += argvlen[i];
    }

    cmd = ngx_calloc(size, ngx_cycle->log);
    if (cmd == NULL) {
        return NULL;
    }

    cmd->handler = handler;
    cmd->data = data;
    cmd->user = 1;
    cmd->is_script = 1;
    cmd->script = script;
    cmd->ev.data = cmd;
    cmd->ev.handler = ngx_http_smarty_redis_cmd_event;
    cmd->ev.log = ngx_cycle->log;

    cmd->argc = n;
    cmd->argv = (const char **) (cmd + 1);
    cmd->argvlen = (size_t *) (cmd->argv + n);
    p = (u_char *) (cmd->argvlen + n);

    cmd->argv[0] = "EVALSHA";
    cmd->argvlen[0] = sizeof("EVALSHA") - 1;
    cmd->argv[1] = ngx_http_smarty_redis_sha1[script];
    cmd->argvlen[1] = 40;
    cmd->argv[2] = (const char *) p;
    p = ngx_sprintf(p, "%d", nkeys);
    cmd->argvlen[2] = p - (u_char *) cmd->argv[2];

    for (i = 0; i < argc; i++) {
        cmd->argv[i + 3] = (const char *) p;
        cmd->argvlen[i + 3] = argvlen[i];
        p = ngx_cpymem(p, argv[i], argvlen[i]);
    }

    ngx_http_smarty_redis_send(cmd, timeout, cmd->argc, cmd->argv,
                               cmd->argvlen);

    return cmd;
}


/*
 * Sends the command, or answers it later (posted) with the reason it was
 * refused.
 */

static void
ngx_http_smarty_redis_send(ngx_http_smarty_redis_cmd_t *cmd,
    ngx_msec_t timeout, int argc, const char **argv, const size_t *argvlen)
{
    ngx_int_t                        rc;
    ngx_uint_t                       probe;
    ngx_http_smarty_redis_status_e   status;
    ngx_http_smarty_redis_worker_t  *w;

    w = &ngx_http_smarty_redis_worker;

    probe = 0;
    status = ngx_http_smarty_redis_admit(&probe);

    if (status != NGX_HTTP_SMARTY_REDIS_OK) {
        ngx_http_smarty_redis_refuse(cmd, status);
        return;
    }

    rc = redisAsyncCommandArgv(w->ac, ngx_http_smarty_redis_reply, cmd,
                               argc, argv, argvlen);

    if (rc != REDIS_OK) {
        /* out of memory: not a failure of Redis, no probe spent */
        ngx_http_smarty_redis_refuse(cmd, NGX_HTTP_SMARTY_REDIS_ERROR);
        return;
    }

    cmd->in_redis = 1;

    if (probe) {
        w->breaker = NGX_HTTP_SMARTY_REDIS_HALF_OPEN;
        cmd->probe = 1;

        ngx_log_error(NGX_LOG_INFO, w->log, 0,
                      "smarty_redis: circuit breaker lets a probe through");
    }

    ngx_add_timer(&cmd->ev, timeout ? timeout : w->conf->timeout);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, w->log, 0,
                   "smarty_redis: %p %*s sent", cmd,
                   argvlen[0] > 32 ? (size_t) 32 : argvlen[0], argv[0]);
}


static ngx_http_smarty_redis_status_e
ngx_http_smarty_redis_admit(ngx_uint_t *probe)
{
    ngx_http_smarty_redis_worker_t  *w;

    w = &ngx_http_smarty_redis_worker;

    if (w->conf == NULL) {
        return NGX_HTTP_SMARTY_REDIS_NOT_CONFIGURED;
    }

    if (w->ac == NULL || w->exiting
        || (w->ac->c.flags & (REDIS_DISCONNECTING|REDIS_FREEING)))
    {
        return NGX_HTTP_SMARTY_REDIS_NOT_CONNECTED;
    }

    switch (w->breaker) {

    case NGX_HTTP_SMARTY_REDIS_OPEN:
        if ((ngx_msec_int_t) (ngx_current_msec - w->open_until) < 0) {
            return NGX_HTTP_SMARTY_REDIS_BREAKER_OPEN;
        }

        if (probe) {
            *probe = 1;
        }

        return NGX_HTTP_SMARTY_REDIS_OK;

    case NGX_HTTP_SMARTY_REDIS_HALF_OPEN:
        return NGX_HTTP_SMARTY_REDIS_BREAKER_OPEN;

    default: /* NGX_HTTP_SMARTY_REDIS_CLOSED */
        return NGX_HTTP_SMARTY_REDIS_OK;
    }
}


/* answered from a posted event: never from inside the caller's call */

static void
ngx_http_smarty_redis_refuse(ngx_http_smarty_redis_cmd_t *cmd,
    ngx_http_smarty_redis_status_e status)
{
    cmd->status = status;
    cmd->decided = 1;

    ngx_post_event(&cmd->ev, &ngx_posted_events);
}


void
ngx_http_smarty_redis_cancel(ngx_http_smarty_redis_cmd_t *cmd)
{
    if (cmd == NULL) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "smarty_redis: cancel %p", cmd);

    cmd->user = 0;

    /*
     * a refused command's posted answer goes; a sent one stays with
     * hiredis and its timer, which decide its outcome for the breaker
     */

    if (cmd->ev.posted) {
        ngx_delete_posted_event(&cmd->ev);
    }

    ngx_http_smarty_redis_release(cmd);
}


ngx_int_t
ngx_http_smarty_redis_available(void)
{
    ngx_http_smarty_redis_worker_t  *w;

    w = &ngx_http_smarty_redis_worker;

    return w->state == NGX_HTTP_SMARTY_REDIS_READY
           && ngx_http_smarty_redis_admit(NULL) == NGX_HTTP_SMARTY_REDIS_OK;
}


ngx_http_smarty_redis_status_e
ngx_http_smarty_redis_state(void)
{
    return ngx_http_smarty_redis_admit(NULL);
}


const char *
ngx_http_smarty_redis_status_text(ngx_http_smarty_redis_status_e status)
{
    switch (status) {
    case NGX_HTTP_SMARTY_REDIS_OK:
        return "ok";
    case NGX_HTTP_SMARTY_REDIS_TIMEOUT:
        return "timeout";
    case NGX_HTTP_SMARTY_REDIS_NOT_CONNECTED:
        return "not_connected";
    case NGX_HTTP_SMARTY_REDIS_BREAKER_OPEN:
        return "breaker_open";
    case NGX_HTTP_SMARTY_REDIS_NOT_CONFIGURED:
        return "not_configured";
    default:
        return "error";
    }
}


/* the command's timer, or its posted answer */

static void
ngx_http_smarty_redis_cmd_event(ngx_event_t *ev)
{
    ngx_uint_t                    drop;
    ngx_http_smarty_redis_cmd_t  *cmd;

    cmd = ev->data;
    drop = 0;

    if (ev->timedout) {
        ev->timedout = 0;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                       "smarty_redis: command %p timed out", cmd);

        if (!cmd->decided) {
            /*
             * the probe timed out too: the connection may lead to a black
             * hole (no reset ever comes); the next probe gets a new one
             */
            drop = cmd->probe && ngx_http_smarty_redis_worker.breaker
                                 == NGX_HTTP_SMARTY_REDIS_HALF_OPEN;

            ngx_http_smarty_redis_account(cmd->probe, 0);
            ngx_http_smarty_redis_decide(cmd, NGX_HTTP_SMARTY_REDIS_TIMEOUT,
                                         NULL);
        }

    } else {
        ngx_http_smarty_redis_decide(cmd, cmd->status, NULL);
    }

    ngx_http_smarty_redis_release(cmd);

    /* cmd may be gone: not touched from here on */

    if (drop) {
        ngx_http_smarty_redis_abort("the breaker's probe timed out");
    }
}


/* hiredis: the reply, or NULL when the context goes away */

static void
ngx_http_smarty_redis_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply                   *reply = r;
    ngx_http_smarty_redis_cmd_t  *cmd = privdata;

    ngx_uint_t  bit;

    if (reply != NULL
        && cmd->is_script
        && !cmd->retried
        && !cmd->decided
        && cmd->user
        && reply->type == REDIS_REPLY_ERROR
        && reply->len >= 8
        && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        /* the server does not know the script (yet): EVAL loads it */

        cmd->retried = 1;
        cmd->argv[0] = "EVAL";
        cmd->argvlen[0] = sizeof("EVAL") - 1;
        cmd->argv[1] = ngx_http_smarty_redis_lua[cmd->script].text;
        cmd->argvlen[1] = ngx_http_smarty_redis_lua[cmd->script].len;

        bit = (ngx_uint_t) 1 << (cmd->script % (8 * sizeof(ngx_uint_t)));

        if (!(ngx_http_smarty_redis_worker.noscript & bit)) {
            /* once per script and connection */
            ngx_http_smarty_redis_worker.noscript |= bit;

            ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                          "smarty_redis: script \"%s\" not loaded in the "
                          "server, sending it",
                          ngx_http_smarty_redis_lua[cmd->script].name);
        }

        if (redisAsyncCommandArgv(ac, ngx_http_smarty_redis_reply, cmd,
                                  cmd->argc, cmd->argv, cmd->argvlen)
            == REDIS_OK)
        {
            return;
        }

        /* the NOSCRIPT reply is the answer then */
    }

    cmd->in_redis = 0;

    if (!cmd->decided) {
        if (reply != NULL) {
            ngx_http_smarty_redis_account(cmd->probe, 1);
            ngx_http_smarty_redis_decide(cmd, NGX_HTTP_SMARTY_REDIS_OK,
                                         reply);

        } else {
            /* the connection is lost: counted once, by the cleanup hook */

            if (cmd->probe) {
                ngx_http_smarty_redis_account(1, 0);
            }

            ngx_http_smarty_redis_decide(cmd,
                                         NGX_HTTP_SMARTY_REDIS_NOT_CONNECTED,
                                         NULL);
        }

    } else {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "smarty_redis: late reply to %p dropped", cmd);
    }

    ngx_http_smarty_redis_release(cmd);
}


static void
ngx_http_smarty_redis_decide(ngx_http_smarty_redis_cmd_t *cmd,
    ngx_http_smarty_redis_status_e status, redisReply *reply)
{
    cmd->decided = 1;

    if (cmd->ev.timer_set) {
        ngx_del_timer(&cmd->ev);
    }

    if (!cmd->user) {
        return;
    }

    cmd->user = 0;

    if (ngx_http_smarty_redis_worker.exiting) {
        return;
    }

    /* a handler that cancels its own command must not free it under us */
    cmd->calling = 1;
    cmd->handler(status, reply, cmd->data);
    cmd->calling = 0;
}


static void
ngx_http_smarty_redis_release(ngx_http_smarty_redis_cmd_t *cmd)
{
    if (cmd->user || cmd->calling || cmd->in_redis || cmd->ev.timer_set
        || cmd->ev.posted)
    {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "smarty_redis: free %p", cmd);

    ngx_free(cmd);
}


/* --- the circuit breaker ------------------------------------------------- */


static void
ngx_http_smarty_redis_account(ngx_uint_t probe, ngx_uint_t ok)
{
    ngx_http_smarty_redis_worker_t  *w;

    w = &ngx_http_smarty_redis_worker;

    if (w->conf == NULL || w->conf->breaker_failures == 0) {
        return;
    }

    if (probe && w->breaker == NGX_HTTP_SMARTY_REDIS_HALF_OPEN) {

        if (ok) {
            ngx_http_smarty_redis_breaker_close();
            return;
        }

        w->breaker = NGX_HTTP_SMARTY_REDIS_OPEN;
        w->open_until = ngx_current_msec + w->conf->breaker_cooldown;

        ngx_log_error(NGX_LOG_INFO, w->log, 0,
                      "smarty_redis: circuit breaker probe failed, open "
                      "again for %M ms", w->conf->breaker_cooldown);
        return;
    }

    if (w->breaker != NGX_HTTP_SMARTY_REDIS_CLOSED) {
        /* only the probe decides */
        return;
    }

    if (ok) {
        w->failures = 0;
        return;
    }

    if (++w->failures < w->conf->breaker_failures) {
        return;
    }

    w->breaker = NGX_HTTP_SMARTY_REDIS_OPEN;
    w->open_until = ngx_current_msec + w->conf->breaker_cooldown;

    ngx_log_error(NGX_LOG_WARN, w->log, 0,
                  "smarty_redis: circuit breaker open after %i consecutive "
                  "failures, commands refused for %M ms",
                  w->failures, w->conf->breaker_cooldown);
}


static void
ngx_http_smarty_redis_breaker_close(void)
{
    ngx_http_smarty_redis_worker_t  *w;

    w = &ngx_http_smarty_redis_worker;

    w->failures = 0;

    if (w->breaker == NGX_HTTP_SMARTY_REDIS_CLOSED) {
        return;
    }

    w->breaker = NGX_HTTP_SMARTY_REDIS_CLOSED;

    ngx_log_error(NGX_LOG_INFO, w->log, 0,
                  "smarty_redis: circuit breaker closed");
}


/* --- the connection ------------------------------------------------------ */


static void
ngx_http_smarty_redis_connect(void)
{
    int                                 argc;
    u_char                              db[NGX_INT_T_LEN];
    size_t                              argvlen[2];
    uintptr_t                           step;
    const char                         *argv[2];
    ngx_connection_t                   *c;
    redisAsyncContext                  *ac;
    ngx_http_smarty_redis_worker_t     *w;
    ngx_http_smarty_redis_main_conf_t  *rmcf;

    w = &ngx_http_smarty_redis_worker;
    rmcf = w->conf;

    if (w->ac != NULL || w->exiting) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, w->log, 0,
                   "smarty_redis: connecting to %V", &rmcf->addr);

    /* numeric addresses only (resolved with the configuration): no DNS */

    if (rmcf->port == 0) {
        ac = redisAsyncConnectUnix((const char *) rmcf->host.data);

    } else {
        ac = redisAsyncConnect((const char *) rmcf->host.data,
                               (int) rmcf->port);
    }

    if (ac == NULL) {
        ngx_http_smarty_redis_log_down(NGX_LOG_WARN, "cannot connect to",
                                       "out of memory");
        ngx_http_smarty_redis_schedule();
        return;
    }

    if (ac->err) {
        ngx_http_smarty_redis_log_down(NGX_LOG_WARN, "cannot connect to",
                                       ac->errstr);
        redisAsyncFree(ac);
        ngx_http_smarty_redis_schedule();
        return;
    }

    c = ngx_get_connection(ac->c.fd, w->log);
    if (c == NULL) {
        ngx_http_smarty_redis_log_down(NGX_LOG_WARN, "cannot connect to",
                                       "no free connection");
        redisAsyncFree(ac);
        ngx_http_smarty_redis_schedule();
        return;
    }

    c->data = w;
    c->log = w->log;
    c->read->log = w->log;
    c->write->log = w->log;
    c->read->handler = ngx_http_smarty_redis_read_handler;
    c->write->handler = ngx_http_smarty_redis_write_handler;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);

    w->ac = ac;
    w->c = c;
    w->state = NGX_HTTP_SMARTY_REDIS_CONNECTING;
    w->why[0] = '\0';
    w->noscript = 0;

    ac->ev.data = w;
    ac->ev.addRead = ngx_http_smarty_redis_add_read;
    ac->ev.delRead = ngx_http_smarty_redis_del_read;
    ac->ev.addWrite = ngx_http_smarty_redis_add_write;
    ac->ev.delWrite = ngx_http_smarty_redis_del_write;
    ac->ev.cleanup = ngx_http_smarty_redis_cleanup;

    ngx_add_timer(&w->connect_timer, rmcf->connect_timeout);

    /* waits for the socket to be writable: the connect(2) result */
    redisAsyncSetConnectCallback(ac, ngx_http_smarty_redis_on_connect);

    if (rmcf->port != 0) {
        (void) redisEnableKeepAlive(&ac->c);
    }

    /* the handshake, first in the pipeline; its replies come in order */

    for (step = NGX_HTTP_SMARTY_REDIS_AUTH;
         step <= NGX_HTTP_SMARTY_REDIS_PING;
         step++)
    {
        switch (step) {

        case NGX_HTTP_SMARTY_REDIS_AUTH:
            if (rmcf->password.len == 0) {
                continue;
            }

            argc = 2;
            argv[0] = "AUTH";
            argvlen[0] = sizeof("AUTH") - 1;
            argv[1] = (const char *) rmcf->password.data;
            argvlen[1] = rmcf->password.len;
            break;

        case NGX_HTTP_SMARTY_REDIS_SELECT:
            if (rmcf->db <= 0) {
                continue;
            }

            argc = 2;
            argv[0] = "SELECT";
            argvlen[0] = sizeof("SELECT") - 1;
            argv[1] = (const char *) db;
            argvlen[1] = ngx_sprintf(db, "%i", rmcf->db) - db;
            break;

        default: /* NGX_HTTP_SMARTY_REDIS_PING */
            argc = 1;
            argv[0] = "PING";
            argvlen[0] = sizeof("PING") - 1;
            break;
        }

        if (redisAsyncCommandArgv(ac, ngx_http_smarty_redis_handshake,
                                  (void *) step, argc, argv, argvlen)
            != REDIS_OK)
        {
            ngx_http_smarty_redis_abort("the handshake was not queued");
            return;
        }
    }
}


/* the next attempt, after the backoff */

static void
ngx_http_smarty_redis_schedule(void)
{
    ngx_msec_t                       delay;
    ngx_http_smarty_redis_worker_t  *w;

    w = &ngx_http_smarty_redis_worker;

    if (w->exiting || w->conf == NULL || w->reconnect.timer_set) {
        return;
    }

    if (w->backoff < NGX_HTTP_SMARTY_REDIS_BACKOFF_MIN) {
        w->backoff = NGX_HTTP_SMARTY_REDIS_BACKOFF_MIN;
    }

    /* between half and all of the backoff: workers do not come in step */
    delay = w->backoff / 2 + (ngx_msec_t) ngx_random() % (w->backoff / 2 + 1);

    w->backoff *= 2;

    if (w->backoff > NGX_HTTP_SMARTY_REDIS_BACKOFF_MAX) {
        w->backoff = NGX_HTTP_SMARTY_REDIS_BACKOFF_MAX;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, w->log, 0,
                   "smarty_redis: reconnecting in %M ms", delay);

    ngx_add_timer(&w->reconnect, delay);
}


/* the connection is down: logged when the reason changes, not each try */

static void
ngx_http_smarty_redis_log_down(ngx_uint_t level, const char *what,
    const char *why)
{
    ngx_http_smarty_redis_worker_t  *w;

    w = &ngx_http_smarty_redis_worker;

    if (why == NULL || why[0] == '\0') {
        why = "unknown error";
    }

    if (ngx_strcmp(w->logged, why) == 0) {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, w->log, 0,
                       "smarty_redis: %s %V: %s", what, &w->conf->addr, why);
        return;
    }

    ngx_cpystrn((u_char *) w->logged, (u_char *) why, sizeof(w->logged));

    ngx_log_error(level, w->log, 0, "smarty_redis: %s %V: %s",
                  what, &w->conf->addr, why);
}


/* frees the context now (not from inside hiredis' callbacks) */

static void
ngx_http_smarty_redis_abort(const char *why)
{
    ngx_http_smarty_redis_worker_t  *w;

    w = &ngx_http_smarty_redis_worker;

    if (w->ac == NULL) {
        return;
    }

    ngx_cpystrn((u_char *) w->why, (u_char *) why, sizeof(w->why));

    /* the cleanup hook runs from inside, and schedules the next try */
    redisAsyncFree(w->ac);
}


static void
ngx_http_smarty_redis_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_smarty_redis_connect();
}


static void
ngx_http_smarty_redis_connect_timer_handler(ngx_event_t *ev)
{
    ngx_http_smarty_redis_worker_t  *w;

    w = &ngx_http_smarty_redis_worker;

    if (w->ac == NULL || w->state != NGX_HTTP_SMARTY_REDIS_CONNECTING) {
        return;
    }

    ngx_http_smarty_redis_abort("connect timed out");
}


static void
ngx_http_smarty_redis_kill_handler(ngx_event_t *ev)
{
    ngx_http_smarty_redis_abort("event registration failed");
}


static void
ngx_http_smarty_redis_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "smarty_redis: connect(): %d", status);
}


static void
ngx_http_smarty_redis_handshake(redisAsyncContext *ac, void *r,
    void *privdata)
{
    char                            *step;
    redisReply                      *reply = r;
    ngx_http_smarty_redis_worker_t  *w;

    w = &ngx_http_smarty_redis_worker;

    if (reply == NULL || ac != w->ac) {
        /* the context goes away */
        return;
    }

    switch ((uintptr_t) privdata) {
    case NGX_HTTP_SMARTY_REDIS_AUTH:
        step = "AUTH";
        break;
    case NGX_HTTP_SMARTY_REDIS_SELECT:
        step = "SELECT";
        break;
    default:
        step = "PING";
        break;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        /* Redis' message: never the password */
        ngx_snprintf((u_char *) w->why, sizeof(w->why) - 1, "%s failed: %*s%Z",
                     step, reply->len > 80 ? (size_t) 80 : reply->len,
                     reply->str);
        w->why[sizeof(w->why) - 1] = '\0';

        /* from inside a callback: hiredis frees the context on return */
        redisAsyncFree(ac);
        return;
    }

    if ((uintptr_t) privdata != NGX_HTTP_SMARTY_REDIS_PING) {
        return;
    }

    if (w->connect_timer.timer_set) {
        ngx_del_timer(&w->connect_timer);
    }

    w->state = NGX_HTTP_SMARTY_REDIS_READY;
    w->backoff = 0;
    w->logged[0] = '\0';
    w->was_up = 1;

    ngx_log_error(NGX_LOG_INFO, w->log, 0,
                  "smarty_redis: connected to %V", &w->conf->addr);

    ngx_http_smarty_redis_breaker_close();
}


static void
ngx_http_smarty_redis_read_handler(ngx_event_t *rev)
{
    ngx_connection_t                *c;
    ngx_http_smarty_redis_worker_t  *w;

    c = rev->data;
    w = c->data;

    if (w->ac == NULL || w->c != c) {
        return;
    }

    /* one buffer at most; level-triggered: more comes as another event */
    redisAsyncHandleRead(w->ac);

    /* the connection may be gone now */
}


static void
ngx_http_smarty_redis_write_handler(ngx_event_t *wev)
{
    ngx_connection_t                *c;
    ngx_http_smarty_redis_worker_t  *w;

    c = wev->data;
    w = c->data;

    if (w->ac == NULL || w->c != c) {
        return;
    }

    redisAsyncHandleWrite(w->ac);
}


/*
 * hiredis' event hooks.  The events are level-triggered (see the top of
 * the file); a failure to register one frees the context from a posted
 * event, outside of hiredis.
 */

static void
ngx_http_smarty_redis_add_read(void *privdata)
{
    ngx_http_smarty_redis_worker_t  *w = privdata;

    if (w->c == NULL || w->c->read->active) {
        return;
    }

    if (ngx_add_event(w->c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
        ngx_post_event(&w->kill, &ngx_posted_events);
    }
}


static void
ngx_http_smarty_redis_del_read(void *privdata)
{
    ngx_http_smarty_redis_worker_t  *w = privdata;

    if (w->c == NULL || !w->c->read->active) {
        return;
    }

    if (ngx_del_event(w->c->read, NGX_READ_EVENT, 0) != NGX_OK) {
        ngx_post_event(&w->kill, &ngx_posted_events);
    }
}


static void
ngx_http_smarty_redis_add_write(void *privdata)
{
    ngx_http_smarty_redis_worker_t  *w = privdata;

    if (w->c == NULL || w->c->write->active) {
        return;
    }

    if (ngx_add_event(w->c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
        != NGX_OK)
    {
        ngx_post_event(&w->kill, &ngx_posted_events);
    }
}


static void
ngx_http_smarty_redis_del_write(void *privdata)
{
    ngx_http_smarty_redis_worker_t  *w = privdata;

    if (w->c == NULL || !w->c->write->active) {
        return;
    }

    if (ngx_del_event(w->c->write, NGX_WRITE_EVENT, 0) != NGX_OK) {
        ngx_post_event(&w->kill, &ngx_posted_events);
    }
}


/*
 * hiredis frees the context: the pending callbacks have had their NULL
 * reply; the socket is closed by hiredis right after this returns.
 */

static void
ngx_http_smarty_redis_cleanup(void *privdata)
{
    const char                          *why;
    ngx_connection_t                    *c;
    redisAsyncContext                   *ac;
    ngx_http_smarty_redis_worker_t      *w = privdata;
    ngx_http_smarty_redis_conn_state_e   state;

    ac = w->ac;
    c = w->c;
    state = w->state;

    if (c != NULL) {
        if (c->read->active) {
            (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
        }

        if (c->write->active) {
            (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
        }

        if (c->read->posted) {
            ngx_delete_posted_event(c->read);
        }

        if (c->write->posted) {
            ngx_delete_posted_event(c->write);
        }

        c->read->closed = 1;
        c->write->closed = 1;

        ngx_free_connection(c);

        /* hiredis closes it */
        c->fd = (ngx_socket_t) -1;
    }

    if (w->connect_timer.timer_set) {
        ngx_del_timer(&w->connect_timer);
    }

    if (w->kill.posted) {
        ngx_delete_posted_event(&w->kill);
    }

    w->ac = NULL;
    w->c = NULL;
    w->state = NGX_HTTP_SMARTY_REDIS_DOWN;

    if (w->exiting) {
        return;
    }

    why = w->why[0] ? w->why
                    : (ac != NULL && ac->c.errstr[0] ? ac->c.errstr
                                                     : "connection closed");

    if (state == NGX_HTTP_SMARTY_REDIS_READY) {
        w->logged[0] = '\0';
        ngx_http_smarty_redis_log_down(NGX_LOG_WARN, "lost the connection to",
                                       why);

        /* a lost connection is one failure, whatever was pending */
        ngx_http_smarty_redis_account(0, 0);

    } else {
        ngx_http_smarty_redis_log_down(NGX_LOG_WARN, "cannot connect to",
                                       why);
    }

    w->why[0] = '\0';

    ngx_http_smarty_redis_schedule();
}


/* --- the health endpoint ------------------------------------------------- */


static ngx_int_t
ngx_http_smarty_redis_health_handler(ngx_http_request_t *r)
{
    u_char                              *p;
    size_t                               argvlen[2];
    ssize_t                              n;
    ngx_int_t                            rc;
    ngx_str_t                            value;
    const char                          *argv[2];
    ngx_http_cleanup_t                  *cln;
    ngx_http_smarty_redis_loc_conf_t    *rlcf;
    ngx_http_smarty_redis_health_ctx_t  *ctx;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_redis_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_smarty_redis_health_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;

    if (rlcf->allow_size
        && ngx_http_arg(r, (u_char *) "size", 4, &value) == NGX_OK)
    {
        n = ngx_atosz(value.data, value.len);

        if (n == NGX_ERROR || (size_t) n > rlcf->allow_size) {
            return NGX_HTTP_BAD_REQUEST;
        }

        ctx->size = n;
        ctx->sized = 1;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_smarty_redis_health_cleanup;
    cln->data = ctx;

    /* echoed by the script: the reply must be to this very command */
    p = ngx_sprintf(ctx->token, "%P.%ui", ngx_pid,
                    ++ngx_http_smarty_redis_health_serial);
    ctx->token_len = p - ctx->token;

    ctx->start = ngx_current_msec;

    if (ctx->sized) {
        argv[0] = (const char *) value.data;
        argvlen[0] = value.len;

        ctx->cmd = ngx_http_smarty_redis_script(
                                    NGX_HTTP_SMARTY_REDIS_LUA_FILLER, 0,
                                    ngx_http_smarty_redis_health_done, ctx,
                                    0, 1, argv, argvlen);

    } else {
        argv[0] = NGX_HTTP_SMARTY_REDIS_HEALTH_KEY;
        argvlen[0] = sizeof(NGX_HTTP_SMARTY_REDIS_HEALTH_KEY) - 1;
        argv[1] = (const char *) ctx->token;
        argvlen[1] = ctx->token_len;

        ctx->cmd = ngx_http_smarty_redis_script(
                                    NGX_HTTP_SMARTY_REDIS_LUA_PING, 0,
                                    ngx_http_smarty_redis_health_done, ctx,
                                    1, 2, argv, argvlen);
    }

    if (ctx->cmd == NULL) {
        return ngx_http_smarty_redis_health_send(r, ctx,
                                                 NGX_HTTP_SMARTY_REDIS_ERROR,
                                                 NULL);
    }

    /* the answer comes later, always: see a client that goes away */

    if (!r->discard_body) {
        r->read_event_handler = ngx_http_test_reading;
    }

    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_smarty_redis_health_done(ngx_http_smarty_redis_status_e status,
    redisReply *reply, void *data)
{
    ngx_http_smarty_redis_health_ctx_t *ctx = data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    ctx->cmd = NULL;

    ngx_http_finalize_request(r,
                         ngx_http_smarty_redis_health_send(r, ctx, status,
                                                           reply));
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_smarty_redis_health_send(ngx_http_request_t *r,
    ngx_http_smarty_redis_health_ctx_t *ctx,
    ngx_http_smarty_redis_status_e status, redisReply *reply)
{
    size_t            bytes;
    ngx_int_t         rc;
    ngx_buf_t        *b;
    ngx_uint_t        up;
    ngx_chain_t       out;
    const char       *reason;
    ngx_table_elt_t  *h;

    up = 0;
    bytes = 0;
    reason = ngx_http_smarty_redis_status_text(status);

    if (status == NGX_HTTP_SMARTY_REDIS_OK) {
        reason = "error";

        if (reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "smarty_redis: health: %*s",
                          reply->len > 200 ? (size_t) 200 : reply->len,
                          reply->str);

        } else if (ctx->sized) {
            if (reply->type == REDIS_REPLY_STRING
                && reply->len == ctx->size)
            {
                up = 1;
                bytes = reply->len;
            }

        } else if (reply->type == REDIS_REPLY_ARRAY
                   && reply->elements == 3
                   && reply->element[1]->type == REDIS_REPLY_STRING
                   && reply->element[1]->len == ctx->token_len
                   && ngx_memcmp(reply->element[1]->str, ctx->token,
                                 ctx->token_len) == 0)
        {
            up = 1;

        } else {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "smarty_redis: health: unexpected reply, type %d",
                          reply->type);
        }
    }

    b = ngx_create_temp_buf(r->pool, 128);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (up) {
        b->last = ngx_sprintf(b->last, "{\"redis\":\"up\",\"latency_ms\":%M",
                              ngx_current_msec - ctx->start);

        if (ctx->sized) {
            b->last = ngx_sprintf(b->last, ",\"bytes\":%uz", bytes);
        }

        b->last = ngx_sprintf(b->last, "}\n");

    } else {
        b->last = ngx_sprintf(b->last,
                              "{\"redis\":\"down\",\"reason\":\"%s\"}\n",
                              reason);
    }

    r->headers_out.status = up ? NGX_HTTP_OK : NGX_HTTP_SERVICE_UNAVAILABLE;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static void
ngx_http_smarty_redis_health_cleanup(void *data)
{
    ngx_http_smarty_redis_health_ctx_t *ctx = data;

    if (ctx->cmd != NULL) {
        ngx_http_smarty_redis_cancel(ctx->cmd);
        ctx->cmd = NULL;
    }
}


/* --- configuration ------------------------------------------------------- */


static void *
ngx_http_smarty_redis_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_smarty_redis_main_conf_t  *rmcf;

    rmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_redis_main_conf_t));
    if (rmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     rmcf->addr = { 0, NULL };
     *     rmcf->host = { 0, NULL };
     *     rmcf->password = { 0, NULL };
     */

    rmcf->port = NGX_CONF_UNSET;
    rmcf->db = NGX_CONF_UNSET;
    rmcf->timeout = NGX_CONF_UNSET_MSEC;
    rmcf->connect_timeout = NGX_CONF_UNSET_MSEC;
    rmcf->breaker_failures = NGX_CONF_UNSET;
    rmcf->breaker_cooldown = NGX_CONF_UNSET_MSEC;

    return rmcf;
}


static char *
ngx_http_smarty_redis_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_smarty_redis_main_conf_t *rmcf = conf;

    u_char        md[EVP_MAX_MD_SIZE];
    ngx_uint_t    i;
    unsigned int  mdlen;

    ngx_conf_init_value(rmcf->db, 0);
    ngx_conf_init_msec_value(rmcf->timeout, 100);
    ngx_conf_init_msec_value(rmcf->connect_timeout, 200);
    ngx_conf_init_value(rmcf->breaker_failures, 5);
    ngx_conf_init_msec_value(rmcf->breaker_cooldown, 5000);

    if (rmcf->db < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_redis_db\" must not be negative");
        return NGX_CONF_ERROR;
    }

    /* the scripts' SHA1s: EVALSHA needs no SCRIPT LOAD first */

    for (i = 0; i < NGX_HTTP_SMARTY_REDIS_LUA_N; i++) {
        if (EVP_Digest(ngx_http_smarty_redis_lua[i].text,
                       ngx_http_smarty_redis_lua[i].len, md, &mdlen,
                       EVP_sha1(), NULL)
            != 1 || mdlen != 20)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "smarty_redis: SHA1 of script \"%s\" failed",
                               ngx_http_smarty_redis_lua[i].name);
            return NGX_CONF_ERROR;
        }

        ngx_hex_dump((u_char *) ngx_http_smarty_redis_sha1[i], md, 20);
        ngx_http_smarty_redis_sha1[i][40] = '\0';
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_smarty_redis_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_smarty_redis_loc_conf_t  *rlcf;

    rlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_redis_loc_conf_t));
    if (rlcf == NULL) {
        return NULL;
    }

    rlcf->allow_size = NGX_CONF_UNSET_SIZE;

    return rlcf;
}


static char *
ngx_http_smarty_redis_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_smarty_redis_loc_conf_t *prev = parent;
    ngx_http_smarty_redis_loc_conf_t *conf = child;

    ngx_conf_merge_size_value(conf->allow_size, prev->allow_size, 0);

    return NGX_CONF_OK;
}


/* smarty_redis host:port | unix:/path */

static char *
ngx_http_smarty_redis_server(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_smarty_redis_main_conf_t *rmcf = conf;

    u_char               *p;
    ngx_str_t            *value;
    ngx_url_t             u;
    struct sockaddr_un   *saun;

    if (rmcf->host.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.default_port = 6379;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"%V\" of the \"smarty_redis\" "
                               "directive", u.err, &u.url);
        }

        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_redis\" \"%V\" has no address", &u.url);
        return NGX_CONF_ERROR;
    }

    rmcf->addr = value[1];

    if (u.family == AF_UNIX) {
        saun = (struct sockaddr_un *) u.addrs[0].sockaddr;

        rmcf->host.len = ngx_strlen(saun->sun_path);
        rmcf->host.data = ngx_pnalloc(cf->pool, rmcf->host.len + 1);
        if (rmcf->host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(rmcf->host.data, saun->sun_path, rmcf->host.len + 1);
        rmcf->port = 0;

        return NGX_CONF_OK;
    }

    if (u.naddrs > 1) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"smarty_redis\" \"%V\" has %ui addresses, "
                           "only the first one, %V, is used",
                           &u.url, u.naddrs, &u.addrs[0].name);
    }

    /* hiredis gets a numeric address: it never resolves (blocks) */

    rmcf->host.data = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (rmcf->host.data == NULL) {
        return NGX_CONF_ERROR;
    }

    switch (u.addrs[0].sockaddr->sa_family) {

#if (NGX_HAVE_INET6)
    case AF_INET6:
        rmcf->host.len = ngx_inet_ntop(AF_INET6,
                           &((struct sockaddr_in6 *) u.addrs[0].sockaddr)
                                ->sin6_addr,
                           rmcf->host.data, NGX_SOCKADDR_STRLEN);
        break;
#endif

    default: /* AF_INET */
        rmcf->host.len = ngx_inet_ntop(AF_INET,
                           &((struct sockaddr_in *) u.addrs[0].sockaddr)
                                ->sin_addr,
                           rmcf->host.data, NGX_SOCKADDR_STRLEN);
        break;
    }

    p = rmcf->host.data + rmcf->host.len;
    *p = '\0';

    rmcf->port = ngx_inet_get_port(u.addrs[0].sockaddr);

    return NGX_CONF_OK;
}


/* smarty_redis_password_file path: AUTH on connect; never logged */

static char *
ngx_http_smarty_redis_password_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_smarty_redis_main_conf_t *rmcf = conf;

    u_char     *p;
    ngx_str_t  *value, path, raw;

    if (rmcf->password.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    path = value[1];

    if (ngx_http_smarty_secret_read(cf, &path, "redis password",
                                    NGX_HTTP_SMARTY_REDIS_PASSWORD_MAX, &raw)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    for (p = raw.data; p < raw.data + raw.len; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\0') {
            ngx_http_smarty_secret_wipe(&raw);
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "redis password file \"%V\" must hold the "
                               "password on one line", &path);
            return NGX_CONF_ERROR;
        }
    }

    rmcf->password.data = ngx_pnalloc(cf->pool, raw.len);
    if (rmcf->password.data == NULL) {
        ngx_http_smarty_secret_wipe(&raw);
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(rmcf->password.data, raw.data, raw.len);
    rmcf->password.len = raw.len;

    ngx_http_smarty_secret_wipe(&raw);

    return NGX_CONF_OK;
}


/* smarty_redis_breaker failures=N cooldown=time | off */

static char *
ngx_http_smarty_redis_breaker(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_smarty_redis_main_conf_t *rmcf = conf;

    ngx_str_t   *value, s;
    ngx_int_t    n;
    ngx_uint_t   i;

    if (rmcf->breaker_failures != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        rmcf->breaker_failures = 0;
        rmcf->breaker_cooldown = 0;
        return NGX_CONF_OK;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "failures=", 9) == 0) {
            n = ngx_atoi(value[i].data + 9, value[i].len - 9);

            if (n == NGX_ERROR || n < 1) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"smarty_redis_breaker\": invalid "
                                   "\"%V\", failures must be a number of "
                                   "1 or more", &value[i]);
                return NGX_CONF_ERROR;
            }

            rmcf->breaker_failures = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "cooldown=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            n = ngx_parse_time(&s, 0);

            if (n == NGX_ERROR || n == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"smarty_redis_breaker\": invalid "
                                   "\"%V\", cooldown must be a time above "
                                   "0 (\"5s\", \"500ms\")", &value[i]);
                return NGX_CONF_ERROR;
            }

            rmcf->breaker_cooldown = (ngx_msec_t) n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_redis_breaker\": unknown parameter "
                           "\"%V\" (failures=N cooldown=time, or off)",
                           &value[i]);
        return NGX_CONF_ERROR;
    }

    if (rmcf->breaker_failures == NGX_CONF_UNSET) {
        rmcf->breaker_failures = 5;
    }

    return NGX_CONF_OK;
}


/* smarty_redis_health [allow_size=size] */

static char *
ngx_http_smarty_redis_health(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_smarty_redis_loc_conf_t *rlcf = conf;

    ssize_t                    size;
    ngx_str_t                 *value, s;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler != NULL) {
        return "is duplicate, or the location has another content handler";
    }

    clcf->handler = ngx_http_smarty_redis_health_handler;

    if (cf->args->nelts == 1) {
        return NGX_CONF_OK;
    }

    value = cf->args->elts;

    if (ngx_strncmp(value[1].data, "allow_size=", 11) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_redis_health\": unknown parameter "
                           "\"%V\" (allow_size=size)", &value[1]);
        return NGX_CONF_ERROR;
    }

    s.data = value[1].data + 11;
    s.len = value[1].len - 11;

    size = ngx_parse_size(&s);

    if (size == NGX_ERROR || size == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_redis_health\": invalid \"%V\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    rlcf->allow_size = size;

    return NGX_CONF_OK;
}


static char *
ngx_http_smarty_redis_positive_msec(ngx_conf_t *cf, void *post, void *data)
{
    ngx_msec_t  *ms = data;

    if (*ms == 0) {
        return "must be above 0";
    }

    return NGX_CONF_OK;
}


/* --- the worker ---------------------------------------------------------- */


static ngx_int_t
ngx_http_smarty_redis_init_process(ngx_cycle_t *cycle)
{
    ngx_http_smarty_redis_worker_t     *w;
    ngx_http_smarty_redis_main_conf_t  *rmcf;

    w = &ngx_http_smarty_redis_worker;

    ngx_memzero(w, sizeof(ngx_http_smarty_redis_worker_t));

    rmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_smarty_redis_module);

    if (rmcf == NULL || rmcf->host.data == NULL) {
        /* no Redis: every command is refused with "not_configured" */
        return NGX_OK;
    }

    w->conf = rmcf;
    w->log = cycle->log;

    w->reconnect.handler = ngx_http_smarty_redis_reconnect_handler;
    w->reconnect.data = w;
    w->reconnect.log = cycle->log;
    w->reconnect.cancelable = 1;

    w->connect_timer.handler = ngx_http_smarty_redis_connect_timer_handler;
    w->connect_timer.data = w;
    w->connect_timer.log = cycle->log;
    w->connect_timer.cancelable = 1;

    w->kill.handler = ngx_http_smarty_redis_kill_handler;
    w->kill.data = w;
    w->kill.log = cycle->log;

    ngx_http_smarty_redis_connect();

    return NGX_OK;
}


static void
ngx_http_smarty_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_smarty_redis_worker_t  *w;

    w = &ngx_http_smarty_redis_worker;

    if (w->conf == NULL) {
        return;
    }

    /* no handler is called from here on: the requests are gone */
    w->exiting = 1;

    if (w->reconnect.timer_set) {
        ngx_del_timer(&w->reconnect);
    }

    if (w->ac != NULL) {
        ngx_http_smarty_redis_abort("worker exiting");
    }
}
