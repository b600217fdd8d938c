/*
 * smarty-gateway: Redis, without ever blocking a worker: the command and
 * script API that the cache and the quotas use (docs/redis.md).  Below it:
 * the topologies (one server; a cluster, ngx_http_smarty_redis_cluster.c;
 * a master found by sentinels, _sentinel.c), the nodes
 * (ngx_http_smarty_redis_node.c: connection, breaker), hiredis on nginx's
 * event loop (ngx_http_smarty_redis_event.c).
 *
 * Routing on a cluster: a command goes to the master of the slot of its
 * key, argv[1] (single-key commands: GET, SET, INCR, XADD, ...); a script
 * to the slot of its first key, and every key it touches must be declared
 * in KEYS and share that slot (a hash tag).
 *
 * The contract of a command:
 *
 *   - ngx_http_smarty_redis_command() and _script() return a handle, or
 *     NULL only when memory ran out (then the handler is never called).
 *
 *   - The handler is called exactly once, unless the command is cancelled
 *     first, and never from inside the call that issued the command: a
 *     command refused at once (no Redis configured, not connected, breaker
 *     open) is answered from a posted event, in the same event loop
 *     iteration.  After the handler returns the handle is gone: never
 *     cancel it then.
 *
 *   - status NGX_HTTP_SMARTY_REDIS_OK comes with a reply (which may be a
 *     Redis error reply, REDIS_REPLY_ERROR, e.g. a script's error); every
 *     other status comes with reply NULL.  The reply belongs to hiredis and
 *     is freed when the handler returns: copy what you keep.
 *
 *   - The handler may issue new commands and cancel other ones.  It must
 *     not retry a refused command in a loop from inside itself.
 *
 *   - The command's memory is its own (the heap), never the caller's: a
 *     caller whose request may go away keeps the handle in its request
 *     context, clears it in the handler, and cancels it from the request's
 *     cleanup.  A late reply then finds nothing to touch.
 *
 *   - "timeout" 0 means smarty_redis_timeout.  The timer runs from the
 *     call: it covers queueing, the round trip and, for a script, the
 *     NOSCRIPT reload.
 */

#ifndef NGX_HTTP_SMARTY_REDIS_H
#define NGX_HTTP_SMARTY_REDIS_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_smarty_redis_node.h"

/* generated from src/lua/ *.lua: NGX_HTTP_SMARTY_REDIS_LUA_<NAME> indexes */
#include "ngx_http_smarty_redis_lua.h"


/*
 * A slice of a script call that another concern supplies, so that one
 * EVALSHA serves both (the cache's lookup decides the quotas too): its
 * keys go after the caller's KEYS, its arguments where the caller's script
 * reads them, and the reply elements after the caller's are handed to it.
 * build() is called before each call (what it sends may change between
 * them); reply() gets its elements and returns NGX_OK, NGX_DECLINED (its
 * concern refuses the request) or NGX_ERROR (not the elements it wants).
 */

typedef struct {
    ngx_int_t   (*build)(void *data);
    ngx_int_t   (*reply)(void *data, redisReply **element, size_t n);
    void         *data;

    ngx_uint_t    nkeys;
    ngx_str_t    *keys;
    ngx_uint_t    nargs;
    ngx_str_t    *args;
    size_t        nreply;           /* the elements it takes */
} ngx_http_smarty_redis_slice_t;


/*
 * Any Redis command: argc arguments, argv[0] the command's name; the
 * arguments are copied before the call returns.
 */
ngx_http_smarty_redis_cmd_t *ngx_http_smarty_redis_command(ngx_msec_t timeout,
    ngx_http_smarty_redis_handler_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen);

/*
 * EVALSHA of an embedded script (NGX_HTTP_SMARTY_REDIS_LUA_<NAME>): argv
 * holds the nkeys keys and then the other arguments, argc in all.  The
 * SHA1s are computed when the configuration is read.  On NOSCRIPT (Redis
 * restarted, SCRIPT FLUSH) the command is sent again once as EVAL, which
 * loads the script for the next ones; the caller sees one reply.
 */
ngx_http_smarty_redis_cmd_t *ngx_http_smarty_redis_script(ngx_uint_t script,
    ngx_msec_t timeout, ngx_http_smarty_redis_handler_pt handler, void *data,
    int nkeys, int argc, const char **argv, const size_t *argvlen);

/*
 * The caller is gone: its handler will never be called.  The command's
 * memory is freed when hiredis and the timer are done with it.  Must not
 * be called after the handler was.
 */
void ngx_http_smarty_redis_cancel(ngx_http_smarty_redis_cmd_t *cmd);

/*
 * Whether a command issued now would be sent: connected (and ready), and
 * the breaker closed or ready to let a probe through.
 */
ngx_int_t ngx_http_smarty_redis_available(void);

/*
 * What a command issued now would get at once: NGX_HTTP_SMARTY_REDIS_OK
 * when it would be sent or queued (the connection being established),
 * else NOT_CONFIGURED, NOT_CONNECTED or BREAKER_OPEN.
 */
ngx_http_smarty_redis_status_e ngx_http_smarty_redis_state(void);

/*
 * The nodes of the worker's topology, read-only (for metrics): fills up to
 * n views (ngx_http_smarty_redis_node.h: address, role, connection,
 * breaker, counters) and returns how many nodes there are; 0 without
 * Redis.  One server: one node; a cluster: every node it knows (role
 * "master" for those the slot map names); sentinels: the master, the
 * former masters, then the sentinels.
 */
ngx_uint_t ngx_http_smarty_redis_nodes(ngx_http_smarty_redis_node_info_t *info,
    ngx_uint_t n);

/* "ok", "timeout", "not_connected", "breaker_open", "not_configured",
 * "error" */
const char *ngx_http_smarty_redis_status_text(
    ngx_http_smarty_redis_status_e status);


extern ngx_module_t  ngx_http_smarty_redis_module;

#endif /* NGX_HTTP_SMARTY_REDIS_H */
