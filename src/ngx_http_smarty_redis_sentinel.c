/*
 * smarty-gateway: a master found by Redis Sentinel (see
 * ngx_http_smarty_redis_sentinel.h, docs/redis.md).
 *
 * The worker asks the sentinels, in turn, SENTINEL get-master-addr-by-name
 * every second (every 100 ms while the master is unreachable), and listens
 * to one of them for +switch-master, which names the new master at once.
 * The master's node checks with ROLE, on every connection, that it is a
 * master; a READONLY reply (a master demoted under a live connection)
 * drops the connection and asks the sentinels again.  Commands issued
 * while no master is known are held until one is (or their timeout).
 */

#include "ngx_http_smarty_redis_sentinel.h"
#include "ngx_http_smarty_redis_event.h"
#include "smarty_cluster.h"


#define NGX_HTTP_SMARTY_SENTINEL_MASTERS   8
#define NGX_HTTP_SMARTY_SENTINEL_MAX       16
#define NGX_HTTP_SMARTY_SENTINEL_PERIOD    1000
#define NGX_HTTP_SMARTY_SENTINEL_SOON      100
#define NGX_HTTP_SMARTY_SENTINEL_RESUB     1000


struct ngx_http_smarty_redis_sentinel_s {
    ngx_http_smarty_redis_settings_t   *settings;
    ngx_http_smarty_redis_settings_t   *sentinel_settings;
    ngx_log_t                          *log;
    ngx_str_t                           name;
    ngx_http_smarty_redis_hooks_t       hooks;

    ngx_http_smarty_redis_addr_t       *addrs;
    ngx_http_smarty_redis_node_t       *sentinels[NGX_HTTP_SMARTY_SENTINEL_MAX];
    ngx_uint_t                          nsentinels;
    ngx_uint_t                          next;

    ngx_http_smarty_redis_node_t       *master;
    ngx_http_smarty_redis_node_t
                              *masters[NGX_HTTP_SMARTY_SENTINEL_MASTERS];
    ngx_uint_t                          nmasters;

    ngx_queue_t                         pending;  /* no master yet */
    ngx_event_t                         poll;
    ngx_http_smarty_redis_cmd_t        *query;
    ngx_uint_t                          unknown;  /* logged once */

    ngx_http_smarty_redis_event_t       sub;      /* +switch-master */
    ngx_event_t                         resub;
    ngx_uint_t                          sub_next;

    unsigned                            exiting:1;
};


static void ngx_http_smarty_redis_sentinel_switch(
    ngx_http_smarty_redis_sentinel_t *st, const char *host, ngx_int_t port,
    const char *how);
static ngx_int_t ngx_http_smarty_redis_sentinel_error(void *data,
    ngx_http_smarty_redis_node_t *node, ngx_http_smarty_redis_cmd_t *cmd,
    redisReply *reply);
static void ngx_http_smarty_redis_sentinel_up(void *data,
    ngx_http_smarty_redis_node_t *node);
static void ngx_http_smarty_redis_sentinel_down(void *data,
    ngx_http_smarty_redis_node_t *node);
static void ngx_http_smarty_redis_sentinel_soon(
    ngx_http_smarty_redis_sentinel_t *st);
static void ngx_http_smarty_redis_sentinel_ask(ngx_event_t *ev);
static void ngx_http_smarty_redis_sentinel_answer(
    ngx_http_smarty_redis_status_e status, redisReply *reply, void *data);
static void ngx_http_smarty_redis_sentinel_dispatch(
    ngx_http_smarty_redis_sentinel_t *st);
static void ngx_http_smarty_redis_sentinel_subscribe(ngx_event_t *ev);
static void ngx_http_smarty_redis_sentinel_auth(redisAsyncContext *ac,
    void *r, void *privdata);
static ngx_int_t ngx_http_smarty_redis_sentinel_refused(
    ngx_http_smarty_redis_sentinel_t *st, redisAsyncContext *ac,
    redisReply *reply, const char *what);
static void ngx_http_smarty_redis_sentinel_message(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_http_smarty_redis_sentinel_unsubscribed(void *data,
    redisAsyncContext *ac);


ngx_http_smarty_redis_sentinel_t *
ngx_http_smarty_redis_sentinel_create(
    ngx_http_smarty_redis_settings_t *settings,
    ngx_http_smarty_redis_settings_t *sentinel_settings, ngx_str_t *name,
    ngx_http_smarty_redis_addr_t *sentinels, ngx_uint_t n, ngx_log_t *log)
{
    ngx_uint_t                         i;
    ngx_http_smarty_redis_sentinel_t  *st;

    st = ngx_calloc(sizeof(ngx_http_smarty_redis_sentinel_t), log);
    if (st == NULL) {
        return NULL;
    }

    st->settings = settings;
    st->sentinel_settings = sentinel_settings;
    st->log = log;
    st->name = *name;
    st->addrs = sentinels;

    st->hooks.error = ngx_http_smarty_redis_sentinel_error;
    st->hooks.up = ngx_http_smarty_redis_sentinel_up;
    st->hooks.down = ngx_http_smarty_redis_sentinel_down;
    st->hooks.data = st;

    ngx_queue_init(&st->pending);

    st->poll.handler = ngx_http_smarty_redis_sentinel_ask;
    st->poll.data = st;
    st->poll.log = log;
    st->poll.cancelable = 1;

    st->resub.handler = ngx_http_smarty_redis_sentinel_subscribe;
    st->resub.data = st;
    st->resub.log = log;
    st->resub.cancelable = 1;

    st->sub.log = log;
    st->sub.gone = ngx_http_smarty_redis_sentinel_unsubscribed;
    st->sub.data = st;

    for (i = 0; i < n && i < NGX_HTTP_SMARTY_SENTINEL_MAX; i++) {
        st->sentinels[i] = ngx_http_smarty_redis_node_create(
                                     sentinel_settings, &sentinels[i].addr,
                                     &sentinels[i].host, sentinels[i].port, 0,
                                     NULL, log);
        if (st->sentinels[i] == NULL) {
            return NULL;
        }

        st->nsentinels++;
    }

    /* the first question as soon as a sentinel is connected */
    ngx_add_timer(&st->poll, 1);
    ngx_add_timer(&st->resub, 1);

    return st;
}


void
ngx_http_smarty_redis_sentinel_send(ngx_http_smarty_redis_sentinel_t *st,
    ngx_http_smarty_redis_cmd_t *cmd, ngx_msec_t timeout)
{
    if (timeout == 0) {
        timeout = st->settings->timeout;
    }

    if (st->master == NULL) {
        ngx_http_smarty_redis_cmd_hold(&st->pending, cmd, timeout);
        ngx_http_smarty_redis_sentinel_soon(st);
        return;
    }

    ngx_http_smarty_redis_node_send(st->master, cmd, timeout);
}


ngx_http_smarty_redis_status_e
ngx_http_smarty_redis_sentinel_state(ngx_http_smarty_redis_sentinel_t *st)
{
    ngx_uint_t  i;

    if (st->master) {
        return ngx_http_smarty_redis_node_state(st->master);
    }

    for (i = 0; i < st->nsentinels; i++) {
        if (ngx_http_smarty_redis_node_state(st->sentinels[i])
            == NGX_HTTP_SMARTY_REDIS_OK)
        {
            /* a master will be named: commands wait for it */
            return NGX_HTTP_SMARTY_REDIS_OK;
        }
    }

    return NGX_HTTP_SMARTY_REDIS_NOT_CONNECTED;
}


ngx_int_t
ngx_http_smarty_redis_sentinel_ready(ngx_http_smarty_redis_sentinel_t *st)
{
    return st->master && ngx_http_smarty_redis_node_ready(st->master);
}


ngx_uint_t
ngx_http_smarty_redis_sentinel_nodes(ngx_http_smarty_redis_sentinel_t *st,
    ngx_http_smarty_redis_node_info_t *info, ngx_uint_t n)
{
    ngx_uint_t  i, k;

    k = 0;

    if (st->master && k < n) {
        ngx_http_smarty_redis_node_info(st->master, &info[k]);
        info[k++].role = "master";
    }

    for (i = 0; i < st->nmasters; i++) {
        if (st->masters[i] != st->master && k < n) {
            ngx_http_smarty_redis_node_info(st->masters[i], &info[k]);
            info[k++].role = "unused";
        }
    }

    for (i = 0; i < st->nsentinels && k < n; i++) {
        ngx_http_smarty_redis_node_info(st->sentinels[i], &info[k]);
        info[k++].role = "sentinel";
    }

    return st->nmasters + st->nsentinels;
}


void
ngx_http_smarty_redis_sentinel_close(ngx_http_smarty_redis_sentinel_t *st)
{
    ngx_uint_t  i;

    st->exiting = 1;

    if (st->poll.timer_set) {
        ngx_del_timer(&st->poll);
    }

    if (st->resub.timer_set) {
        ngx_del_timer(&st->resub);
    }

    if (st->sub.ac) {
        redisAsyncFree(st->sub.ac);
    }

    for (i = 0; i < st->nmasters; i++) {
        ngx_http_smarty_redis_node_close(st->masters[i]);
    }

    for (i = 0; i < st->nsentinels; i++) {
        ngx_http_smarty_redis_node_close(st->sentinels[i]);
    }
}


/* --- the master ----------------------------------------------------------- */


static void
ngx_http_smarty_redis_sentinel_switch(ngx_http_smarty_redis_sentinel_t *st,
    const char *host, ngx_int_t port, const char *how)
{
    u_char                         buf[SMARTY_CLUSTER_HOST_LEN + 16];
    ngx_str_t                      addr, h;
    ngx_uint_t                     i, level;
    ngx_http_smarty_redis_node_t  *node, *old;

    if (st->master && ngx_http_smarty_redis_node_is(st->master, host, port)) {
        return;
    }

    if (!smarty_cluster_numeric(host)) {
        ngx_log_error(NGX_LOG_WARN, st->log, 0,
                      "smarty_redis: the sentinels name the master \"%V\" "
                      "\"%s\", not an address: a worker does not resolve "
                      "names", &st->name, host);
        return;
    }

    node = NULL;

    for (i = 0; i < st->nmasters; i++) {
        if (ngx_http_smarty_redis_node_is(st->masters[i], host, port)) {
            node = st->masters[i];
            break;
        }
    }

    if (node == NULL) {
        if (st->nmasters == NGX_HTTP_SMARTY_SENTINEL_MASTERS) {
            /* the oldest one goes for good (its node stays retired) */
            ngx_memmove(&st->masters[0], &st->masters[1],
                        (st->nmasters - 1) * sizeof(st->masters[0]));
            st->nmasters--;
        }

        h.data = (u_char *) host;
        h.len = ngx_strlen(host);
        addr.data = buf;
        addr.len = ngx_snprintf(buf, sizeof(buf),
                                ngx_strchr(host, ':') ? "[%V]:%i" : "%V:%i",
                                &h, port)
                   - buf;

        node = ngx_http_smarty_redis_node_create(st->settings, &addr, &h,
                                        port, NGX_HTTP_SMARTY_REDIS_NODE_MASTER,
                                        &st->hooks, st->log);
        if (node == NULL) {
            return;
        }

        st->masters[st->nmasters++] = node;

    } else {
        ngx_http_smarty_redis_node_revive(node);
    }

    old = st->master;
    st->master = node;

    level = old ? NGX_LOG_WARN : NGX_LOG_INFO;

    ngx_log_error(level, st->log, 0,
                  "smarty_redis: the master \"%V\" is %V (%s)", &st->name,
                  ngx_http_smarty_redis_node_addr(node), how);

    if (old) {
        ngx_http_smarty_redis_node_retire(old, "the sentinels name another "
                                          "master");
    }

    ngx_http_smarty_redis_sentinel_dispatch(st);
}


static void
ngx_http_smarty_redis_sentinel_dispatch(ngx_http_smarty_redis_sentinel_t *st)
{
    ngx_queue_t                  *q;
    ngx_http_smarty_redis_cmd_t  *cmd;

    while (st->master && !ngx_queue_empty(&st->pending)) {
        q = ngx_queue_head(&st->pending);
        cmd = ngx_queue_data(q, ngx_http_smarty_redis_cmd_t, queue);

        ngx_http_smarty_redis_cmd_unhold(cmd);
        ngx_http_smarty_redis_node_send(st->master, cmd, 0);
    }
}


static ngx_int_t
ngx_http_smarty_redis_sentinel_error(void *data,
    ngx_http_smarty_redis_node_t *node, ngx_http_smarty_redis_cmd_t *cmd,
    redisReply *reply)
{
    ngx_http_smarty_redis_sentinel_t *st = data;

    if (reply->len >= 8 && ngx_strncmp(reply->str, "READONLY", 8) == 0
        && !st->exiting)
    {
        /* demoted under a live connection: a failover; ask again */
        ngx_http_smarty_redis_node_reset(node, "the master became a replica");
        ngx_http_smarty_redis_sentinel_soon(st);
    }

    return NGX_DECLINED;
}


static void
ngx_http_smarty_redis_sentinel_up(void *data,
    ngx_http_smarty_redis_node_t *node)
{
}


static void
ngx_http_smarty_redis_sentinel_down(void *data,
    ngx_http_smarty_redis_node_t *node)
{
    ngx_http_smarty_redis_sentinel_t *st = data;

    ngx_http_smarty_redis_sentinel_soon(st);
}


/* --- asking the sentinels ------------------------------------------------- */


static void
ngx_http_smarty_redis_sentinel_soon(ngx_http_smarty_redis_sentinel_t *st)
{
    if (st->exiting || st->query) {
        return;
    }

    if (st->poll.timer_set) {
        if (st->poll.timer.key
            <= ngx_current_msec + NGX_HTTP_SMARTY_SENTINEL_SOON)
        {
            return;
        }

        ngx_del_timer(&st->poll);
    }

    ngx_add_timer(&st->poll, NGX_HTTP_SMARTY_SENTINEL_SOON);
}


static void
ngx_http_smarty_redis_sentinel_ask(ngx_event_t *ev)
{
    ngx_http_smarty_redis_sentinel_t *st = ev->data;

    size_t                          len[3];
    ngx_uint_t                      i, k;
    const char                     *argv[3];
    ngx_http_smarty_redis_node_t   *node;

    if (st->exiting || st->query) {
        return;
    }

    node = NULL;

    for (i = 0; i < st->nsentinels; i++) {
        k = (st->next + i) % st->nsentinels;

        if (ngx_http_smarty_redis_node_state(st->sentinels[k])
            == NGX_HTTP_SMARTY_REDIS_OK)
        {
            node = st->sentinels[k];
            st->next = k + 1;
            break;
        }
    }

    if (node == NULL) {
        ngx_add_timer(&st->poll, NGX_HTTP_SMARTY_SENTINEL_SOON * 2);
        return;
    }

    argv[0] = "SENTINEL";
    len[0] = sizeof("SENTINEL") - 1;
    argv[1] = "get-master-addr-by-name";
    len[1] = sizeof("get-master-addr-by-name") - 1;
    argv[2] = (const char *) st->name.data;
    len[2] = st->name.len;

    st->query = ngx_http_smarty_redis_cmd_create(
                                    ngx_http_smarty_redis_sentinel_answer, st,
                                    3, argv, len, -1);
    if (st->query == NULL) {
        ngx_add_timer(&st->poll, NGX_HTTP_SMARTY_SENTINEL_PERIOD);
        return;
    }

    ngx_http_smarty_redis_node_send(node, st->query,
                                    st->settings->connect_timeout
                                    + st->settings->timeout);
}


static void
ngx_http_smarty_redis_sentinel_answer(ngx_http_smarty_redis_status_e status,
    redisReply *reply, void *data)
{
    ngx_http_smarty_redis_sentinel_t *st = data;

    char        host[SMARTY_CLUSTER_HOST_LEN];
    ngx_int_t   port;
    ngx_msec_t  next;

    st->query = NULL;

    if (st->exiting) {
        return;
    }

    next = NGX_HTTP_SMARTY_SENTINEL_SOON;

    if (status == NGX_HTTP_SMARTY_REDIS_OK
        && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2
        && reply->element[0]->type == REDIS_REPLY_STRING
        && reply->element[1]->type == REDIS_REPLY_STRING
        && reply->element[0]->len < sizeof(host))
    {
        ngx_memcpy(host, reply->element[0]->str, reply->element[0]->len);
        host[reply->element[0]->len] = '\0';
        port = ngx_atoi((u_char *) reply->element[1]->str,
                        reply->element[1]->len);

        if (port > 0 && port < 65536) {
            st->unknown = 0;
            ngx_http_smarty_redis_sentinel_switch(st, host, port,
                                                  "asked of a sentinel");

            if (st->master && ngx_http_smarty_redis_node_ready(st->master)) {
                next = NGX_HTTP_SMARTY_SENTINEL_PERIOD;
            }
        }

    } else if (status == NGX_HTTP_SMARTY_REDIS_OK && !st->unknown) {
        st->unknown = 1;
        ngx_log_error(NGX_LOG_WARN, st->log, 0,
                      "smarty_redis: a sentinel does not name the master "
                      "\"%V\"%s%*s", &st->name,
                      reply->type == REDIS_REPLY_ERROR ? ": " : "",
                      reply->type == REDIS_REPLY_ERROR
                      ? (reply->len > 80 ? (size_t) 80 : reply->len)
                      : (size_t) 0,
                      reply->type == REDIS_REPLY_ERROR ? reply->str : "");
    }

    if (!st->poll.timer_set) {
        ngx_add_timer(&st->poll, next);
    }
}


/* --- +switch-master ----------------------------------------------------- */


static void
ngx_http_smarty_redis_sentinel_subscribe(ngx_event_t *ev)
{
    ngx_http_smarty_redis_sentinel_t *st = ev->data;

    int                            argc;
    size_t                         argvlen[3];
    const char                    *argv[3];
    redisAsyncContext             *ac;
    ngx_http_smarty_redis_addr_t  *a;

    if (st->exiting || st->sub.ac || st->nsentinels == 0) {
        return;
    }

    a = &st->addrs[st->sub_next++ % st->nsentinels];

    ac = redisAsyncConnect((const char *) a->host.data, (int) a->port);

    if (ac == NULL || ac->err) {
        if (ac) {
            redisAsyncFree(ac);
        }

        ngx_add_timer(&st->resub, NGX_HTTP_SMARTY_SENTINEL_RESUB);
        return;
    }

    if (ngx_http_smarty_redis_event_attach(&st->sub, ac) != NGX_OK) {
        redisAsyncFree(ac);
        ngx_add_timer(&st->resub, NGX_HTTP_SMARTY_SENTINEL_RESUB);
        return;
    }

    /* a sentinel with requirepass: AUTH first in the pipeline */

    argc = ngx_http_smarty_redis_auth_argv(st->sentinel_settings, argv,
                                           argvlen);

    if (argc) {
        if (redisAsyncCommandArgv(ac, ngx_http_smarty_redis_sentinel_auth,
                                  st, argc, argv, argvlen)
            != REDIS_OK)
        {
            redisAsyncFree(ac);
            return;
        }
    }

    if (redisAsyncCommand(ac, ngx_http_smarty_redis_sentinel_message, st,
                          "SUBSCRIBE +switch-master")
        != REDIS_OK)
    {
        redisAsyncFree(ac);
    }
}


static void
ngx_http_smarty_redis_sentinel_auth(redisAsyncContext *ac, void *r,
    void *privdata)
{
    ngx_http_smarty_redis_sentinel_t *st = privdata;

    if (r == NULL || st->exiting) {
        return;
    }

    (void) ngx_http_smarty_redis_sentinel_refused(st, ac, r,
                                                  "AUTH (listening)");
}


/*
 * An error reply on the listening connection (a refused AUTH, NOAUTH to
 * SUBSCRIBE): logged, the connection dropped; another sentinel is tried
 * after NGX_HTTP_SMARTY_SENTINEL_RESUB, and the polling covers the gap.
 * The reply is Redis's, never the password.
 */

static ngx_int_t
ngx_http_smarty_redis_sentinel_refused(ngx_http_smarty_redis_sentinel_t *st,
    redisAsyncContext *ac, redisReply *reply, const char *what)
{
    if (reply->type != REDIS_REPLY_ERROR) {
        return NGX_DECLINED;
    }

    ngx_log_error(NGX_LOG_ERR, st->log, 0,
                  "smarty_redis: sentinel %s:%d refused %s: %*s",
                  ac->c.tcp.host ? ac->c.tcp.host : "?", ac->c.tcp.port,
                  what, (size_t) ngx_min(reply->len, 200), reply->str);

    redisAsyncDisconnect(ac);

    return NGX_OK;
}


/* "<name> <old ip> <old port> <new ip> <new port>" */

static void
ngx_http_smarty_redis_sentinel_message(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                        *reply = r;
    ngx_http_smarty_redis_sentinel_t  *st = privdata;

    u_char      *p, *end, *f[5];
    size_t       flen[5];
    ngx_int_t    port;
    ngx_uint_t   n;
    char         host[SMARTY_CLUSTER_HOST_LEN];

    if (reply == NULL || st->exiting) {
        return;
    }

    if (ngx_http_smarty_redis_sentinel_refused(st, ac, reply, "SUBSCRIBE")
        == NGX_OK)
    {
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 3
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[2]->type != REDIS_REPLY_STRING
        || reply->element[0]->len != 7
        || ngx_strncmp(reply->element[0]->str, "message", 7) != 0)
    {
        return;
    }

    p = (u_char *) reply->element[2]->str;
    end = p + reply->element[2]->len;

    for (n = 0; n < 5 && p < end; n++) {
        f[n] = p;

        while (p < end && *p != ' ') {
            p++;
        }

        flen[n] = p - f[n];

        while (p < end && *p == ' ') {
            p++;
        }
    }

    if (n != 5 || flen[0] != st->name.len
        || ngx_strncmp(f[0], st->name.data, st->name.len) != 0
        || flen[3] == 0 || flen[3] >= sizeof(host))
    {
        return;
    }

    port = ngx_atoi(f[4], flen[4]);

    if (port <= 0 || port > 65535) {
        return;
    }

    ngx_memcpy(host, f[3], flen[3]);
    host[flen[3]] = '\0';

    ngx_http_smarty_redis_sentinel_switch(st, host, port, "+switch-master");
}


static void
ngx_http_smarty_redis_sentinel_unsubscribed(void *data, redisAsyncContext *ac)
{
    ngx_http_smarty_redis_sentinel_t *st = data;

    if (st->exiting || st->resub.timer_set) {
        return;
    }

    /* another sentinel in a moment; the polling covers the gap */
    ngx_add_timer(&st->resub, NGX_HTTP_SMARTY_SENTINEL_RESUB);
}
