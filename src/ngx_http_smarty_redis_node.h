/*
 * smarty-gateway: one Redis server as a worker sees it: its connection
 * (handshake, backoff), its commands (a timer each, NOSCRIPT, ASKING), its
 * circuit breaker, its counters (docs/redis.md).  The topologies above it
 * (one server; ngx_http_smarty_redis_cluster.c; _sentinel.c) route the
 * commands to nodes; the command API (ngx_http_smarty_redis.h) sits on
 * top, and callers use that one.
 */

#ifndef NGX_HTTP_SMARTY_REDIS_NODE_H
#define NGX_HTTP_SMARTY_REDIS_NODE_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <hiredis/hiredis.h>


typedef enum {
    NGX_HTTP_SMARTY_REDIS_OK = 0,         /* a reply, maybe an error reply */
    NGX_HTTP_SMARTY_REDIS_TIMEOUT,        /* no reply within the timeout */
    NGX_HTTP_SMARTY_REDIS_NOT_CONNECTED,  /* no connection, or it was lost
                                             before the reply came */
    NGX_HTTP_SMARTY_REDIS_BREAKER_OPEN,   /* refused by the open breaker */
    NGX_HTTP_SMARTY_REDIS_NOT_CONFIGURED, /* no "smarty_redis" */
    NGX_HTTP_SMARTY_REDIS_ERROR           /* out of memory, hiredis refused
                                             the command */
} ngx_http_smarty_redis_status_e;


typedef void (*ngx_http_smarty_redis_handler_pt)(
    ngx_http_smarty_redis_status_e status, redisReply *reply, void *data);


/* what every node of a configuration shares */

typedef struct {
    ngx_str_t                   user;         /* ACL user, or empty */
    ngx_str_t                   password;     /* never logged */
    ngx_int_t                   db;
    ngx_msec_t                  timeout;
    ngx_msec_t                  connect_timeout;
    ngx_int_t                   breaker_failures;  /* 0: no breaker */
    ngx_msec_t                  breaker_cooldown;
} ngx_http_smarty_redis_settings_t;


/* an address as configured: a seed of a cluster, a sentinel */

typedef struct {
    ngx_str_t                   addr;         /* as written, for logs */
    ngx_str_t                   host;         /* numeric, NUL-terminated */
    ngx_int_t                   port;
} ngx_http_smarty_redis_addr_t;


typedef struct ngx_http_smarty_redis_node_s  ngx_http_smarty_redis_node_t;
typedef struct ngx_http_smarty_redis_cmd_s   ngx_http_smarty_redis_cmd_t;


/*
 * A command: its outcome is decided once, by the first of its reply, its
 * timer, the loss of the connection; its handler is called then (or, for
 * a command refused at once, from a posted event).  It is freed when
 * hiredis no longer holds it, its timer is gone, no topology holds it
 * and its caller was answered or cancelled it.
 */

struct ngx_http_smarty_redis_cmd_s {
    ngx_event_t                         ev;      /* timer, posted answer */
    ngx_queue_t                         queue;   /* held by a topology */
    ngx_http_smarty_redis_handler_pt    handler;
    void                               *data;
    ngx_http_smarty_redis_status_e      status;  /* for the posted answer */
    ngx_http_smarty_redis_node_t       *node;    /* the last one sent to */

    int                                 argc;
    const char                        **argv;
    size_t                             *argvlen;
    int                                 key;     /* the argv index that
                                                    routes it, -1: none */
    ngx_uint_t                          redirects;

    /* a script's EVALSHA: the EVAL sent once after NOSCRIPT */
    const char                         *script_name;
    const char                         *script_text;
    size_t                              script_len;
    ngx_uint_t                          script;

    unsigned                            user:1;      /* handler owed */
    unsigned                            in_redis:1;  /* hiredis holds it */
    unsigned                            held:1;      /* in a queue */
    unsigned                            decided:1;
    unsigned                            probe:1;
    unsigned                            retried:1;
    unsigned                            calling:1;   /* in the handler */
    unsigned                            asking:1;    /* ASKING first */
    unsigned                            polling:1;   /* its timer reads */
};


/*
 * What a topology hears from its nodes.  error(): an error reply to cmd
 * (MOVED, ASK, TRYAGAIN, READONLY, ...) before its handler sees it;
 * NGX_OK, the topology took the command (sent it elsewhere, held it);
 * NGX_DECLINED, the reply is the answer.  up(): the handshake succeeded.
 * down(): the connection was lost, or could not be made.
 */

typedef struct {
    ngx_int_t   (*error)(void *data, ngx_http_smarty_redis_node_t *node,
                         ngx_http_smarty_redis_cmd_t *cmd, redisReply *reply);
    void        (*up)(void *data, ngx_http_smarty_redis_node_t *node);
    void        (*down)(void *data, ngx_http_smarty_redis_node_t *node);
    void         *data;
} ngx_http_smarty_redis_hooks_t;


#define NGX_HTTP_SMARTY_REDIS_NODE_MASTER  0x01  /* ROLE must say master */


/*
 * A read-only view of a node, for metrics and the error log: what it is
 * connected to, its breaker, and counters since the worker started.
 */

typedef struct {
    ngx_str_t                   addr;         /* "127.0.0.1:7000" */
    const char                 *role;         /* set by the topology:
                                                 "server", "master",
                                                 "sentinel", "unused" */
    const char                 *connection;   /* "down", "connecting",
                                                 "ready", "retired" */
    const char                 *breaker;      /* "closed", "open",
                                                 "half_open" */
    ngx_uint_t                  failures;     /* consecutive */
    uint64_t                    sent;         /* commands written */
    uint64_t                    replies;      /* replies, error ones too */
    uint64_t                    error_replies;
    uint64_t                    timeouts;
    uint64_t                    lost;         /* lost with the connection */
    uint64_t                    refused;      /* not connected, breaker */
    uint64_t                    redirects;    /* MOVED, ASK, TRYAGAIN */
    uint64_t                    connects;     /* handshakes that succeeded */
} ngx_http_smarty_redis_node_info_t;


/*
 * A node of host:port (port 0: a unix socket at host; host numeric, never
 * resolved here), addr naming it in logs; it connects at once, and again
 * after a backoff whenever the connection is lost.  hooks may be NULL.
 */
ngx_http_smarty_redis_node_t *ngx_http_smarty_redis_node_create(
    ngx_http_smarty_redis_settings_t *settings, ngx_str_t *addr,
    ngx_str_t *host, ngx_int_t port, ngx_uint_t flags,
    ngx_http_smarty_redis_hooks_t *hooks, ngx_log_t *log);

/*
 * The AUTH command of settings (an ACL user's, or the password alone) in
 * argv[0..2]: its argc, 0 when settings have no password.
 */
int ngx_http_smarty_redis_auth_argv(ngx_http_smarty_redis_settings_t *s,
    const char **argv, size_t *argvlen);

/* the node's "host:port" (or unix path) and numeric parts */
ngx_str_t *ngx_http_smarty_redis_node_addr(ngx_http_smarty_redis_node_t *node);
ngx_int_t ngx_http_smarty_redis_node_is(ngx_http_smarty_redis_node_t *node,
    const char *host, ngx_int_t port);

/*
 * A command of argc arguments (copied into its own memory), its routing
 * key argv[key] (-1: none); NULL when memory ran out.
 */
ngx_http_smarty_redis_cmd_t *ngx_http_smarty_redis_cmd_create(
    ngx_http_smarty_redis_handler_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen, int key);

/*
 * Sends cmd, or answers it later, refused.  The timer starts at the first
 * send (a command redirected keeps the one it has).
 */
void ngx_http_smarty_redis_node_send(ngx_http_smarty_redis_node_t *node,
    ngx_http_smarty_redis_cmd_t *cmd, ngx_msec_t timeout);

/*
 * A topology keeps cmd in queue (no node can take it yet), its timer
 * running (started here if it has none); the timer answers it TIMEOUT.
 * unhold() takes it out again, to be sent.
 */
void ngx_http_smarty_redis_cmd_hold(ngx_queue_t *queue,
    ngx_http_smarty_redis_cmd_t *cmd, ngx_msec_t timeout);
void ngx_http_smarty_redis_cmd_unhold(ngx_http_smarty_redis_cmd_t *cmd);

/* answers cmd with status from a posted event (it was not sent) */
void ngx_http_smarty_redis_cmd_refuse(ngx_http_smarty_redis_cmd_t *cmd,
    ngx_http_smarty_redis_status_e status);

/* the caller is gone: the handler will never be called */
void ngx_http_smarty_redis_node_cancel(ngx_http_smarty_redis_cmd_t *cmd);

/*
 * What a command sent now would get at once: OK when it would be sent or
 * queued behind the handshake, else NOT_CONNECTED or BREAKER_OPEN.
 */
ngx_http_smarty_redis_status_e ngx_http_smarty_redis_node_state(
    ngx_http_smarty_redis_node_t *node);

/* connected, handshake done, and the breaker would let a command by */
ngx_int_t ngx_http_smarty_redis_node_ready(ngx_http_smarty_redis_node_t *node);

/*
 * A node no topology routes to any more (a master that failed over, a
 * sentinel's old master): its connection is closed (pending commands get
 * NOT_CONNECTED), it does not reconnect; revive() connects it again.
 */
void ngx_http_smarty_redis_node_retire(ngx_http_smarty_redis_node_t *node,
    const char *why);
void ngx_http_smarty_redis_node_revive(ngx_http_smarty_redis_node_t *node);
ngx_int_t ngx_http_smarty_redis_node_retired(
    ngx_http_smarty_redis_node_t *node);

/* drops the connection now (and reconnects after the backoff) */
void ngx_http_smarty_redis_node_reset(ngx_http_smarty_redis_node_t *node,
    const char *why);

/* the read-only view of a node */
void ngx_http_smarty_redis_node_info(ngx_http_smarty_redis_node_t *node,
    ngx_http_smarty_redis_node_info_t *info);

/* the worker exits: no handler is called any more */
void ngx_http_smarty_redis_node_close(ngx_http_smarty_redis_node_t *node);

#endif /* NGX_HTTP_SMARTY_REDIS_NODE_H */
