/*
 * smarty-gateway: one Redis server, as a worker sees it (see
 * ngx_http_smarty_redis_node.h, docs/redis.md): the connection and its
 * handshake, the commands' lifecycle, the breaker, the counters.
 */

#include "ngx_http_smarty_redis_node.h"
#include "ngx_http_smarty_redis_event.h"


#define NGX_HTTP_SMARTY_REDIS_BACKOFF_MIN  50
#define NGX_HTTP_SMARTY_REDIS_BACKOFF_MAX  2000


typedef enum {
    NGX_HTTP_SMARTY_REDIS_DOWN = 0,
    NGX_HTTP_SMARTY_REDIS_CONNECTING,
    NGX_HTTP_SMARTY_REDIS_READY
} ngx_http_smarty_redis_conn_e;


typedef struct {
    uint64_t                            sent;
    uint64_t                            replies;
    uint64_t                            error_replies;
    uint64_t                            timeouts;
    uint64_t                            lost;
    uint64_t                            refused;
    uint64_t                            redirects;
    uint64_t                            connects;
} ngx_http_smarty_redis_counters_t;


typedef enum {
    NGX_HTTP_SMARTY_REDIS_CLOSED = 0,
    NGX_HTTP_SMARTY_REDIS_OPEN,
    NGX_HTTP_SMARTY_REDIS_HALF_OPEN           /* the probe is out */
} ngx_http_smarty_redis_breaker_e;


typedef enum {
    NGX_HTTP_SMARTY_REDIS_AUTH = 1,
    NGX_HTTP_SMARTY_REDIS_SELECT,
    NGX_HTTP_SMARTY_REDIS_ROLE,
    NGX_HTTP_SMARTY_REDIS_PING
} ngx_http_smarty_redis_step_e;


struct ngx_http_smarty_redis_node_s {
    ngx_http_smarty_redis_settings_t   *settings;
    ngx_str_t                           addr;     /* for logs */
    ngx_str_t                           host;     /* NUL-terminated */
    ngx_int_t                           port;     /* 0: a unix socket */
    ngx_uint_t                          flags;
    ngx_log_t                          *log;
    ngx_http_smarty_redis_hooks_t       hooks;
    ngx_http_smarty_redis_counters_t    n;

    ngx_http_smarty_redis_event_t       event;    /* ac, its connection */
    ngx_http_smarty_redis_conn_e        state;

    ngx_event_t                         reconnect;
    ngx_event_t                         connect_timer;
    ngx_msec_t                          backoff;

    ngx_http_smarty_redis_breaker_e     breaker;
    ngx_int_t                           failures;
    ngx_msec_t                          open_until;

    ngx_uint_t                          noscript;     /* logged, bit n:
                                                         script n */
    char                                why[128];     /* when we free */
    char                                logged[128];  /* last down reason
                                                         logged */
    unsigned                            exiting:1;
    unsigned                            retired:1;
};


/* the worker exits: no handler is called any more, held commands too */
static ngx_uint_t  ngx_http_smarty_redis_node_exiting;


static ngx_http_smarty_redis_status_e ngx_http_smarty_redis_node_admit(
    ngx_http_smarty_redis_node_t *node, ngx_uint_t *probe);
static void ngx_http_smarty_redis_cmd_event(ngx_event_t *ev);
static void ngx_http_smarty_redis_cmd_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_smarty_redis_cmd_decide(ngx_http_smarty_redis_cmd_t *cmd,
    ngx_http_smarty_redis_status_e status, redisReply *reply);
static void ngx_http_smarty_redis_cmd_release(
    ngx_http_smarty_redis_cmd_t *cmd);
static void ngx_http_smarty_redis_node_account(
    ngx_http_smarty_redis_node_t *node, ngx_uint_t probe, ngx_uint_t ok);
static void ngx_http_smarty_redis_node_breaker_close(
    ngx_http_smarty_redis_node_t *node);
static void ngx_http_smarty_redis_node_connect(
    ngx_http_smarty_redis_node_t *node);
static void ngx_http_smarty_redis_node_schedule(
    ngx_http_smarty_redis_node_t *node);
static void ngx_http_smarty_redis_node_log_down(
    ngx_http_smarty_redis_node_t *node, ngx_uint_t level, const char *what,
    const char *why);
static void ngx_http_smarty_redis_node_abort(
    ngx_http_smarty_redis_node_t *node, const char *why);
static void ngx_http_smarty_redis_node_reconnect_handler(ngx_event_t *ev);
static void ngx_http_smarty_redis_node_connect_timer_handler(ngx_event_t *ev);
static void ngx_http_smarty_redis_node_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_http_smarty_redis_node_handshake(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_http_smarty_redis_node_gone(void *data,
    redisAsyncContext *ac);
static ngx_int_t ngx_http_smarty_redis_node_write(
    ngx_http_smarty_redis_node_t *node, ngx_http_smarty_redis_cmd_t *cmd);


ngx_http_smarty_redis_node_t *
ngx_http_smarty_redis_node_create(ngx_http_smarty_redis_settings_t *settings,
    ngx_str_t *addr, ngx_str_t *host, ngx_int_t port, ngx_uint_t flags,
    ngx_http_smarty_redis_hooks_t *hooks, ngx_log_t *log)
{
    ngx_http_smarty_redis_node_t  *node;

    node = ngx_calloc(sizeof(ngx_http_smarty_redis_node_t) + addr->len
                      + host->len + 1, log);
    if (node == NULL) {
        return NULL;
    }

    node->settings = settings;
    node->log = log;
    node->port = port;
    node->flags = flags;

    if (hooks) {
        node->hooks = *hooks;
    }

    node->addr.data = (u_char *) (node + 1);
    node->addr.len = addr->len;
    ngx_memcpy(node->addr.data, addr->data, addr->len);

    node->host.data = node->addr.data + addr->len;
    node->host.len = host->len;
    ngx_memcpy(node->host.data, host->data, host->len);
    node->host.data[host->len] = '\0';

    node->event.log = log;
    node->event.gone = ngx_http_smarty_redis_node_gone;
    node->event.data = node;

    node->reconnect.handler = ngx_http_smarty_redis_node_reconnect_handler;
    node->reconnect.data = node;
    node->reconnect.log = log;
    node->reconnect.cancelable = 1;

    node->connect_timer.handler =
                               ngx_http_smarty_redis_node_connect_timer_handler;
    node->connect_timer.data = node;
    node->connect_timer.log = log;
    node->connect_timer.cancelable = 1;

    ngx_http_smarty_redis_node_connect(node);

    return node;
}


int
ngx_http_smarty_redis_auth_argv(ngx_http_smarty_redis_settings_t *s,
    const char **argv, size_t *argvlen)
{
    int  argc;

    if (s->password.len == 0) {
        return 0;
    }

    argc = 0;
    argv[argc] = "AUTH";
    argvlen[argc++] = sizeof("AUTH") - 1;

    if (s->user.len) {
        /* an ACL user (Redis 6 and later) */
        argv[argc] = (const char *) s->user.data;
        argvlen[argc++] = s->user.len;
    }

    argv[argc] = (const char *) s->password.data;
    argvlen[argc++] = s->password.len;

    return argc;
}


ngx_str_t *
ngx_http_smarty_redis_node_addr(ngx_http_smarty_redis_node_t *node)
{
    return &node->addr;
}


ngx_int_t
ngx_http_smarty_redis_node_is(ngx_http_smarty_redis_node_t *node,
    const char *host, ngx_int_t port)
{
    return node->port == port
           && ngx_strcmp(node->host.data, (u_char *) host) == 0;
}


void
ngx_http_smarty_redis_node_close(ngx_http_smarty_redis_node_t *node)
{
    /* no handler is called from here on: the requests are gone */
    node->exiting = 1;
    ngx_http_smarty_redis_node_exiting = 1;

    if (node->reconnect.timer_set) {
        ngx_del_timer(&node->reconnect);
    }

    if (node->event.ac != NULL) {
        ngx_http_smarty_redis_node_abort(node, "worker exiting");
    }

    /* the node stays: late timers of its commands may still read it */
}


/* --- commands ------------------------------------------------------------ */


ngx_http_smarty_redis_cmd_t *
ngx_http_smarty_redis_cmd_create(ngx_http_smarty_redis_handler_pt handler,
    void *data, int argc, const char **argv, const size_t *argvlen, int key)
{
    int                           i;
    u_char                       *p;
    size_t                        size;
    ngx_http_smarty_redis_cmd_t  *cmd;

    /* the struct, then its argv, argvlen and the bytes: its own memory */

    size = sizeof(ngx_http_smarty_redis_cmd_t)
           + argc * (sizeof(char *) + sizeof(size_t));

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
    cmd->key = (key >= 0 && key < argc) ? key : -1;
    cmd->argc = argc;
    cmd->argv = (const char **) (cmd + 1);
    cmd->argvlen = (size_t *) (cmd->argv + argc);
    p = (u_char *) (cmd->argvlen + argc);

    for (i = 0; i < argc; i++) {
        cmd->argv[i] = (const char *) p;
        cmd->argvlen[i] = argvlen[i];
        p = ngx_cpymem(p, argv[i], argvlen[i]);
    }

    cmd->ev.data = cmd;
    cmd->ev.handler = ngx_http_smarty_redis_cmd_event;
    cmd->ev.log = ngx_cycle->log;

    return cmd;
}


void
ngx_http_smarty_redis_node_send(ngx_http_smarty_redis_node_t *node,
    ngx_http_smarty_redis_cmd_t *cmd, ngx_msec_t timeout)
{
    ngx_uint_t                       probe;
    ngx_http_smarty_redis_status_e   status;

    cmd->node = node;
    cmd->probe = 0;

    probe = 0;
    status = ngx_http_smarty_redis_node_admit(node, &probe);

    if (status != NGX_HTTP_SMARTY_REDIS_OK) {
        node->n.refused++;
        ngx_http_smarty_redis_cmd_refuse(cmd, status);
        return;
    }

    if (ngx_http_smarty_redis_node_write(node, cmd) != NGX_OK) {
        /* out of memory: not a failure of Redis, no probe spent */
        ngx_http_smarty_redis_cmd_refuse(cmd, NGX_HTTP_SMARTY_REDIS_ERROR);
        return;
    }

    if (probe) {
        node->breaker = NGX_HTTP_SMARTY_REDIS_HALF_OPEN;
        cmd->probe = 1;

        ngx_log_error(NGX_LOG_INFO, node->log, 0,
                      "smarty_redis: circuit breaker lets a probe through "
                      "(%V)", &node->addr);
    }

    if (!cmd->ev.timer_set) {
        ngx_add_timer(&cmd->ev, timeout ? timeout : node->settings->timeout);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, node->log, 0,
                   "smarty_redis: %p %*s sent", cmd,
                   cmd->argvlen[0] > 32 ? (size_t) 32 : cmd->argvlen[0],
                   cmd->argv[0]);
}


/* the command on the connection, behind an ASKING when it was asked to */

static ngx_int_t
ngx_http_smarty_redis_node_write(ngx_http_smarty_redis_node_t *node,
    ngx_http_smarty_redis_cmd_t *cmd)
{
    size_t       len;
    const char  *asking;

    if (cmd->asking) {
        asking = "ASKING";
        len = sizeof("ASKING") - 1;

        if (redisAsyncCommandArgv(node->event.ac, NULL, NULL, 1, &asking,
                                  &len)
            != REDIS_OK)
        {
            return NGX_ERROR;
        }
    }

    if (redisAsyncCommandArgv(node->event.ac,
                              ngx_http_smarty_redis_cmd_reply, cmd,
                              cmd->argc, cmd->argv, cmd->argvlen)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    cmd->in_redis = 1;
    node->n.sent++;

    return NGX_OK;
}


void
ngx_http_smarty_redis_cmd_hold(ngx_queue_t *queue,
    ngx_http_smarty_redis_cmd_t *cmd, ngx_msec_t timeout)
{
    ngx_queue_insert_tail(queue, &cmd->queue);
    cmd->held = 1;

    if (!cmd->ev.timer_set) {
        ngx_add_timer(&cmd->ev, timeout);
    }
}


void
ngx_http_smarty_redis_cmd_unhold(ngx_http_smarty_redis_cmd_t *cmd)
{
    if (cmd->held) {
        ngx_queue_remove(&cmd->queue);
        cmd->held = 0;
    }
}


static ngx_http_smarty_redis_status_e
ngx_http_smarty_redis_node_admit(ngx_http_smarty_redis_node_t *node,
    ngx_uint_t *probe)
{
    redisAsyncContext  *ac;

    ac = node->event.ac;

    if (ac == NULL || node->exiting || node->retired
        || (ac->c.flags & (REDIS_DISCONNECTING|REDIS_FREEING)))
    {
        return NGX_HTTP_SMARTY_REDIS_NOT_CONNECTED;
    }

    switch (node->breaker) {

    case NGX_HTTP_SMARTY_REDIS_OPEN:
        if ((ngx_msec_int_t) (ngx_current_msec - node->open_until) < 0) {
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


ngx_http_smarty_redis_status_e
ngx_http_smarty_redis_node_state(ngx_http_smarty_redis_node_t *node)
{
    return ngx_http_smarty_redis_node_admit(node, NULL);
}


ngx_int_t
ngx_http_smarty_redis_node_ready(ngx_http_smarty_redis_node_t *node)
{
    return node->state == NGX_HTTP_SMARTY_REDIS_READY
           && ngx_http_smarty_redis_node_admit(node, NULL)
              == NGX_HTTP_SMARTY_REDIS_OK;
}


/* answered from a posted event: never from inside the caller's call */

void
ngx_http_smarty_redis_cmd_refuse(ngx_http_smarty_redis_cmd_t *cmd,
    ngx_http_smarty_redis_status_e status)
{
    ngx_http_smarty_redis_cmd_unhold(cmd);

    if (cmd->ev.timer_set) {
        ngx_del_timer(&cmd->ev);
    }

    cmd->status = status;
    cmd->decided = 1;

    ngx_post_event(&cmd->ev, &ngx_posted_events);
}


void
ngx_http_smarty_redis_node_cancel(ngx_http_smarty_redis_cmd_t *cmd)
{
    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "smarty_redis: cancel %p", cmd);

    cmd->user = 0;

    /*
     * a refused command's posted answer goes, a held one's timer too; a
     * sent one stays with hiredis and its timer, which decide its outcome
     * for the breaker
     */

    if (cmd->ev.posted) {
        ngx_delete_posted_event(&cmd->ev);
    }

    if (cmd->held) {
        ngx_http_smarty_redis_cmd_unhold(cmd);

        if (cmd->ev.timer_set) {
            ngx_del_timer(&cmd->ev);
        }
    }

    ngx_http_smarty_redis_cmd_release(cmd);
}


/* the command's timer, or its posted answer */

static void
ngx_http_smarty_redis_cmd_event(ngx_event_t *ev)
{
    ngx_uint_t                     drop;
    ngx_http_smarty_redis_cmd_t   *cmd;
    ngx_http_smarty_redis_node_t  *node;

    cmd = ev->data;
    node = cmd->node;
    drop = 0;

    if (ev->timedout && cmd->in_redis && !cmd->decided && !cmd->held
        && node != NULL && node->event.ac != NULL)
    {
        /*
         * the reply may be in the socket already, come while the worker
         * was busy with other events: taken now, it is no timeout (the
         * command is not freed under us meanwhile)
         */
        cmd->polling = 1;
        ngx_http_smarty_redis_event_poll(&node->event);
        cmd->polling = 0;
        node = cmd->node;
    }

    if (ev->timedout && cmd->decided) {
        ev->timedout = 0;

    } else if (ev->timedout) {
        ev->timedout = 0;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                       "smarty_redis: command %p timed out", cmd);

        if (cmd->held || !cmd->in_redis) {
            /* held by a topology (or between two nodes): no node's fault */
            ngx_http_smarty_redis_cmd_unhold(cmd);

            if (!cmd->decided) {
                ngx_http_smarty_redis_cmd_decide(cmd,
                                             NGX_HTTP_SMARTY_REDIS_TIMEOUT,
                                             NULL);
            }

        } else if (!cmd->decided) {
            node->n.timeouts++;
            /*
             * the probe timed out too: the connection may lead to a black
             * hole (no reset ever comes); the next probe gets a new one
             */
            drop = cmd->probe
                   && node->breaker == NGX_HTTP_SMARTY_REDIS_HALF_OPEN;

            ngx_http_smarty_redis_node_account(node, cmd->probe, 0);
            ngx_http_smarty_redis_cmd_decide(cmd,
                                             NGX_HTTP_SMARTY_REDIS_TIMEOUT,
                                             NULL);
        }

    } else {
        ngx_http_smarty_redis_cmd_decide(cmd, cmd->status, NULL);
    }

    ngx_http_smarty_redis_cmd_release(cmd);

    /* cmd may be gone: not touched from here on */

    if (drop) {
        ngx_http_smarty_redis_node_abort(node, "the breaker's probe timed out");
    }
}


/* hiredis: the reply, or NULL when the context goes away */

static void
ngx_http_smarty_redis_cmd_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                   *reply = r;
    ngx_http_smarty_redis_cmd_t  *cmd = privdata;

    ngx_uint_t                     bit;
    ngx_http_smarty_redis_node_t  *node;

    node = cmd->node;

    if (reply != NULL
        && cmd->script_text != NULL
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
        cmd->argv[1] = cmd->script_text;
        cmd->argvlen[1] = cmd->script_len;

        bit = (ngx_uint_t) 1 << (cmd->script % (8 * sizeof(ngx_uint_t)));

        if (!(node->noscript & bit)) {
            /* once per script and connection */
            node->noscript |= bit;

            ngx_log_error(NGX_LOG_INFO, node->log, 0,
                          "smarty_redis: script \"%s\" not loaded in the "
                          "server %V, sending it", cmd->script_name,
                          &node->addr);
        }

        node->n.replies++;

        if (ngx_http_smarty_redis_node_write(node, cmd) == NGX_OK) {
            cmd->asking = 0;
            return;
        }

        /* the NOSCRIPT reply is the answer then */
    }

    cmd->in_redis = 0;

    if (!cmd->decided && reply != NULL) {
        node->n.replies++;

        if (reply->type == REDIS_REPLY_ERROR) {
            node->n.error_replies++;
        }
    }

    if (!cmd->decided && reply != NULL && cmd->user
        && reply->type == REDIS_REPLY_ERROR && node->hooks.error
        && !node->exiting)
    {
        /* the node answered: a success for its breaker, whatever follows */
        ngx_http_smarty_redis_node_account(node, cmd->probe, 1);
        cmd->probe = 0;
        cmd->asking = 0;

        if (node->hooks.error(node->hooks.data, node, cmd, reply) == NGX_OK)
        {
            /* sent elsewhere, held, or refused (posted): not ours now */
            node->n.redirects++;
            return;
        }

        ngx_http_smarty_redis_cmd_decide(cmd, NGX_HTTP_SMARTY_REDIS_OK,
                                         reply);
        ngx_http_smarty_redis_cmd_release(cmd);
        return;
    }

    cmd->asking = 0;

    if (!cmd->decided) {
        if (reply != NULL) {
            ngx_http_smarty_redis_node_account(node, cmd->probe, 1);
            ngx_http_smarty_redis_cmd_decide(cmd, NGX_HTTP_SMARTY_REDIS_OK,
                                             reply);

        } else {
            /* the connection is lost: counted once, by the gone hook */

            node->n.lost++;

            if (cmd->probe) {
                ngx_http_smarty_redis_node_account(node, 1, 0);
            }

            ngx_http_smarty_redis_cmd_decide(cmd,
                                         NGX_HTTP_SMARTY_REDIS_NOT_CONNECTED,
                                         NULL);
        }

    } else {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "smarty_redis: late reply to %p dropped", cmd);
    }

    ngx_http_smarty_redis_cmd_release(cmd);
}


static void
ngx_http_smarty_redis_cmd_decide(ngx_http_smarty_redis_cmd_t *cmd,
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

    if (ngx_http_smarty_redis_node_exiting) {
        return;
    }

    /* a handler that cancels its own command must not free it under us */
    cmd->calling = 1;
    cmd->handler(status, reply, cmd->data);
    cmd->calling = 0;
}


static void
ngx_http_smarty_redis_cmd_release(ngx_http_smarty_redis_cmd_t *cmd)
{
    if (cmd->user || cmd->calling || cmd->in_redis || cmd->held
        || cmd->polling || cmd->ev.timer_set || cmd->ev.posted)
    {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "smarty_redis: free %p", cmd);

    ngx_free(cmd);
}


/* --- the circuit breaker ------------------------------------------------- */


static void
ngx_http_smarty_redis_node_account(ngx_http_smarty_redis_node_t *node,
    ngx_uint_t probe, ngx_uint_t ok)
{
    ngx_http_smarty_redis_settings_t  *s;

    s = node->settings;

    if (s->breaker_failures == 0) {
        return;
    }

    if (probe && node->breaker == NGX_HTTP_SMARTY_REDIS_HALF_OPEN) {

        if (ok) {
            ngx_http_smarty_redis_node_breaker_close(node);
            return;
        }

        node->breaker = NGX_HTTP_SMARTY_REDIS_OPEN;
        node->open_until = ngx_current_msec + s->breaker_cooldown;

        ngx_log_error(NGX_LOG_INFO, node->log, 0,
                      "smarty_redis: circuit breaker probe failed, open "
                      "again for %M ms (%V)", s->breaker_cooldown,
                      &node->addr);
        return;
    }

    if (node->breaker != NGX_HTTP_SMARTY_REDIS_CLOSED) {
        /* only the probe decides */
        return;
    }

    if (ok) {
        node->failures = 0;
        return;
    }

    if (++node->failures < s->breaker_failures) {
        return;
    }

    node->breaker = NGX_HTTP_SMARTY_REDIS_OPEN;
    node->open_until = ngx_current_msec + s->breaker_cooldown;

    ngx_log_error(NGX_LOG_WARN, node->log, 0,
                  "smarty_redis: circuit breaker open after %i consecutive "
                  "failures, commands refused for %M ms (%V)",
                  node->failures, s->breaker_cooldown, &node->addr);
}


static void
ngx_http_smarty_redis_node_breaker_close(ngx_http_smarty_redis_node_t *node)
{
    node->failures = 0;

    if (node->breaker == NGX_HTTP_SMARTY_REDIS_CLOSED) {
        return;
    }

    node->breaker = NGX_HTTP_SMARTY_REDIS_CLOSED;

    ngx_log_error(NGX_LOG_INFO, node->log, 0,
                  "smarty_redis: circuit breaker closed (%V)", &node->addr);
}


/* --- the connection ------------------------------------------------------ */


static void
ngx_http_smarty_redis_node_connect(ngx_http_smarty_redis_node_t *node)
{
    int                                 argc;
    u_char                              db[NGX_INT_T_LEN];
    size_t                              argvlen[3];
    uintptr_t                           step;
    const char                         *argv[3];
    redisAsyncContext                  *ac;
    ngx_http_smarty_redis_settings_t   *s;

    s = node->settings;

    if (node->event.ac != NULL || node->exiting || node->retired) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, node->log, 0,
                   "smarty_redis: connecting to %V", &node->addr);

    /* numeric addresses only (resolved with the configuration): no DNS */

    if (node->port == 0) {
        ac = redisAsyncConnectUnix((const char *) node->host.data);

    } else {
        ac = redisAsyncConnect((const char *) node->host.data,
                               (int) node->port);
    }

    if (ac == NULL) {
        ngx_http_smarty_redis_node_log_down(node, NGX_LOG_WARN,
                                            "cannot connect to",
                                            "out of memory");
        ngx_http_smarty_redis_node_schedule(node);
        return;
    }

    if (ac->err) {
        ngx_http_smarty_redis_node_log_down(node, NGX_LOG_WARN,
                                            "cannot connect to", ac->errstr);
        redisAsyncFree(ac);
        ngx_http_smarty_redis_node_schedule(node);
        return;
    }

    if (ngx_http_smarty_redis_event_attach(&node->event, ac) != NGX_OK) {
        ngx_http_smarty_redis_node_log_down(node, NGX_LOG_WARN,
                                            "cannot connect to",
                                            "no free connection");
        redisAsyncFree(ac);
        ngx_http_smarty_redis_node_schedule(node);
        return;
    }

    node->state = NGX_HTTP_SMARTY_REDIS_CONNECTING;
    node->why[0] = '\0';
    node->noscript = 0;

    /* the node, for the handshake's and the connect callback's sake */
    ac->data = node;

    ngx_add_timer(&node->connect_timer, s->connect_timeout);

    /* waits for the socket to be writable: the connect(2) result */
    redisAsyncSetConnectCallback(ac, ngx_http_smarty_redis_node_on_connect);

    if (node->port != 0) {
        (void) redisEnableKeepAlive(&ac->c);
    }

    /* the handshake, first in the pipeline; its replies come in order */

    for (step = NGX_HTTP_SMARTY_REDIS_AUTH;
         step <= NGX_HTTP_SMARTY_REDIS_PING;
         step++)
    {
        switch (step) {

        case NGX_HTTP_SMARTY_REDIS_AUTH:
            argc = ngx_http_smarty_redis_auth_argv(s, argv, argvlen);

            if (argc == 0) {
                continue;
            }

            break;

        case NGX_HTTP_SMARTY_REDIS_SELECT:
            if (s->db <= 0) {
                continue;
            }

            argc = 2;
            argv[0] = "SELECT";
            argvlen[0] = sizeof("SELECT") - 1;
            argv[1] = (const char *) db;
            argvlen[1] = ngx_sprintf(db, "%i", s->db) - db;
            break;

        case NGX_HTTP_SMARTY_REDIS_ROLE:
            if (!(node->flags & NGX_HTTP_SMARTY_REDIS_NODE_MASTER)) {
                continue;
            }

            argc = 1;
            argv[0] = "ROLE";
            argvlen[0] = sizeof("ROLE") - 1;
            break;

        default: /* NGX_HTTP_SMARTY_REDIS_PING */
            argc = 1;
            argv[0] = "PING";
            argvlen[0] = sizeof("PING") - 1;
            break;
        }

        if (redisAsyncCommandArgv(ac, ngx_http_smarty_redis_node_handshake,
                                  (void *) step, argc, argv, argvlen)
            != REDIS_OK)
        {
            ngx_http_smarty_redis_node_abort(node,
                                             "the handshake was not queued");
            return;
        }
    }
}


/* the next attempt, after the backoff */

static void
ngx_http_smarty_redis_node_schedule(ngx_http_smarty_redis_node_t *node)
{
    ngx_msec_t  delay;

    if (node->exiting || node->retired || node->reconnect.timer_set) {
        return;
    }

    if (node->backoff < NGX_HTTP_SMARTY_REDIS_BACKOFF_MIN) {
        node->backoff = NGX_HTTP_SMARTY_REDIS_BACKOFF_MIN;
    }

    /* between half and all of the backoff: workers do not come in step */
    delay = node->backoff / 2
            + (ngx_msec_t) ngx_random() % (node->backoff / 2 + 1);

    node->backoff *= 2;

    if (node->backoff > NGX_HTTP_SMARTY_REDIS_BACKOFF_MAX) {
        node->backoff = NGX_HTTP_SMARTY_REDIS_BACKOFF_MAX;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, node->log, 0,
                   "smarty_redis: reconnecting in %M ms", delay);

    ngx_add_timer(&node->reconnect, delay);
}


/* the connection is down: logged when the reason changes, not each try */

static void
ngx_http_smarty_redis_node_log_down(ngx_http_smarty_redis_node_t *node,
    ngx_uint_t level, const char *what, const char *why)
{
    if (why == NULL || why[0] == '\0') {
        why = "unknown error";
    }

    if (ngx_strcmp(node->logged, why) == 0) {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, node->log, 0,
                       "smarty_redis: %s %V: %s", what, &node->addr, why);
        return;
    }

    ngx_cpystrn((u_char *) node->logged, (u_char *) why,
                sizeof(node->logged));

    ngx_log_error(level, node->log, 0, "smarty_redis: %s %V: %s",
                  what, &node->addr, why);
}


/* frees the context now (not from inside hiredis' callbacks) */

static void
ngx_http_smarty_redis_node_abort(ngx_http_smarty_redis_node_t *node,
    const char *why)
{
    if (node->event.ac == NULL) {
        return;
    }

    ngx_cpystrn((u_char *) node->why, (u_char *) why, sizeof(node->why));

    /* the gone hook runs from inside, and schedules the next try */
    redisAsyncFree(node->event.ac);
}


static void
ngx_http_smarty_redis_node_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_smarty_redis_node_connect(ev->data);
}


static void
ngx_http_smarty_redis_node_connect_timer_handler(ngx_event_t *ev)
{
    ngx_http_smarty_redis_node_t  *node = ev->data;

    if (node->event.ac == NULL
        || node->state != NGX_HTTP_SMARTY_REDIS_CONNECTING)
    {
        return;
    }

    ngx_http_smarty_redis_node_abort(node, "connect timed out");
}


static void
ngx_http_smarty_redis_node_on_connect(const redisAsyncContext *ac,
    int status)
{
    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "smarty_redis: connect(): %d", status);
}


static void
ngx_http_smarty_redis_node_handshake(redisAsyncContext *ac, void *r,
    void *privdata)
{
    char                          *step;
    redisReply                    *reply = r;
    ngx_http_smarty_redis_node_t  *node;

    node = ac->data;

    if (reply == NULL || node == NULL || ac != node->event.ac) {
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
    case NGX_HTTP_SMARTY_REDIS_ROLE:
        step = "ROLE";
        break;
    default:
        step = "PING";
        break;
    }

    if ((uintptr_t) privdata == NGX_HTTP_SMARTY_REDIS_ROLE
        && reply->type != REDIS_REPLY_ERROR
        && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1
            || reply->element[0]->type != REDIS_REPLY_STRING
            || reply->element[0]->len != 6
            || ngx_strncmp(reply->element[0]->str, "master", 6) != 0))
    {
        /* a sentinel's master that is not (or no longer) one */
        ngx_cpystrn((u_char *) node->why, (u_char *) "not a master",
                    sizeof(node->why));
        redisAsyncFree(ac);
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        /* Redis' message: never the password */
        ngx_snprintf((u_char *) node->why, sizeof(node->why) - 1,
                     "%s failed: %*s%Z", step,
                     reply->len > 80 ? (size_t) 80 : reply->len, reply->str);
        node->why[sizeof(node->why) - 1] = '\0';

        /* from inside a callback: hiredis frees the context on return */
        redisAsyncFree(ac);
        return;
    }

    if ((uintptr_t) privdata != NGX_HTTP_SMARTY_REDIS_PING) {
        return;
    }

    if (node->connect_timer.timer_set) {
        ngx_del_timer(&node->connect_timer);
    }

    node->state = NGX_HTTP_SMARTY_REDIS_READY;
    node->backoff = 0;
    node->logged[0] = '\0';

    node->n.connects++;

    ngx_log_error(NGX_LOG_INFO, node->log, 0,
                  "smarty_redis: connected to %V", &node->addr);

    ngx_http_smarty_redis_node_breaker_close(node);

    if (node->hooks.up) {
        node->hooks.up(node->hooks.data, node);
    }
}


/* hiredis freed the context (the adapter's cleanup hook) */

static void
ngx_http_smarty_redis_node_gone(void *data, redisAsyncContext *ac)
{
    ngx_http_smarty_redis_node_t  *node = data;

    const char                    *why;
    ngx_http_smarty_redis_conn_e   state;

    state = node->state;

    if (node->connect_timer.timer_set) {
        ngx_del_timer(&node->connect_timer);
    }

    node->state = NGX_HTTP_SMARTY_REDIS_DOWN;

    if (node->exiting) {
        return;
    }

    why = node->why[0] ? node->why
                       : (ac != NULL && ac->c.errstr[0] ? ac->c.errstr
                                                        : "connection closed");

    if (state == NGX_HTTP_SMARTY_REDIS_READY) {
        node->logged[0] = '\0';
        ngx_http_smarty_redis_node_log_down(node, NGX_LOG_WARN,
                                            "lost the connection to", why);

        /* a lost connection is one failure, whatever was pending */
        ngx_http_smarty_redis_node_account(node, 0, 0);

    } else {
        ngx_http_smarty_redis_node_log_down(node, NGX_LOG_WARN,
                                            "cannot connect to", why);
    }

    node->why[0] = '\0';

    ngx_http_smarty_redis_node_schedule(node);

    if (node->hooks.down && !node->retired) {
        node->hooks.down(node->hooks.data, node);
    }
}


void
ngx_http_smarty_redis_node_retire(ngx_http_smarty_redis_node_t *node,
    const char *why)
{
    if (node->retired) {
        return;
    }

    ngx_log_error(NGX_LOG_INFO, node->log, 0,
                  "smarty_redis: %V is no longer used: %s", &node->addr, why);

    node->retired = 1;

    if (node->reconnect.timer_set) {
        ngx_del_timer(&node->reconnect);
    }

    ngx_http_smarty_redis_node_abort(node, why);
}


void
ngx_http_smarty_redis_node_revive(ngx_http_smarty_redis_node_t *node)
{
    if (!node->retired) {
        return;
    }

    node->retired = 0;
    node->backoff = 0;
    node->logged[0] = '\0';

    ngx_http_smarty_redis_node_connect(node);
}


ngx_int_t
ngx_http_smarty_redis_node_retired(ngx_http_smarty_redis_node_t *node)
{
    return node->retired;
}


void
ngx_http_smarty_redis_node_reset(ngx_http_smarty_redis_node_t *node,
    const char *why)
{
    ngx_http_smarty_redis_node_abort(node, why);
}


void
ngx_http_smarty_redis_node_info(ngx_http_smarty_redis_node_t *node,
    ngx_http_smarty_redis_node_info_t *info)
{
    static const char  *conn[] = { "down", "connecting", "ready" };
    static const char  *brk[] = { "closed", "open", "half_open" };

    info->addr = node->addr;
    info->role = NULL;
    info->connection = node->retired ? "retired" : conn[node->state];
    info->breaker = brk[node->breaker];
    info->failures = (ngx_uint_t) node->failures;
    info->sent = node->n.sent;
    info->replies = node->n.replies;
    info->error_replies = node->n.error_replies;
    info->timeouts = node->n.timeouts;
    info->lost = node->n.lost;
    info->refused = node->n.refused;
    info->redirects = node->n.redirects;
    info->connects = node->n.connects;
}
