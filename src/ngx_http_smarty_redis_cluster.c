/*
 * smarty-gateway: Redis Cluster under the command API (see
 * ngx_http_smarty_redis_cluster.h, docs/redis.md).
 *
 * The worker keeps the slot map (16384 pointers to nodes), read with
 * CLUSTER SLOTS from any node it can reach: at start, every 5 s, and soon
 * (at most every 100 ms) after a MOVED, a lost connection or a command
 * with no node; every 250 ms while a master of the map is unreachable (a
 * failover in progress).  A command goes to the master of its key's slot;
 * MOVED updates that slot and resends, ASK resends once behind ASKING,
 * TRYAGAIN (a slot half migrated) resends every 20 ms, all within the
 * command's own timeout.  Commands issued before the first map are held
 * until it comes (or their timeout).
 */

#include "ngx_http_smarty_redis_cluster.h"
#include "smarty_cluster.h"


#define NGX_HTTP_SMARTY_CLUSTER_NODES       64
#define NGX_HTTP_SMARTY_CLUSTER_REDIRECTS   5
#define NGX_HTTP_SMARTY_CLUSTER_PERIOD      5000
#define NGX_HTTP_SMARTY_CLUSTER_SOON        100
#define NGX_HTTP_SMARTY_CLUSTER_FAILING     250
#define NGX_HTTP_SMARTY_CLUSTER_TRYAGAIN    20


struct ngx_http_smarty_redis_cluster_s {
    ngx_http_smarty_redis_settings_t   *settings;
    ngx_log_t                          *log;
    ngx_http_smarty_redis_hooks_t       hooks;

    ngx_http_smarty_redis_node_t       *nodes[NGX_HTTP_SMARTY_CLUSTER_NODES];
    u_char                              owns[NGX_HTTP_SMARTY_CLUSTER_NODES];
                                                  /* a master of the map */
    ngx_uint_t                          nnodes;
    ngx_uint_t                          nseeds;   /* nodes[0 .. nseeds-1] */
    ngx_uint_t                          next;     /* asked for the map */

    ngx_http_smarty_redis_node_t      **slots;    /* 16384 */
    ngx_uint_t                          mapped;

    ngx_queue_t                         pending;  /* no map yet */
    ngx_queue_t                         again;    /* TRYAGAIN */
    ngx_event_t                         again_ev;

    ngx_event_t                         refresh;
    ngx_http_smarty_redis_cmd_t        *query;    /* CLUSTER SLOTS out */
    ngx_msec_t                          last;     /* last one sent */
    ngx_uint_t                          named;    /* logged once: a node
                                                     announced by a name
                                                     with no address */
    /* the names the nodes announce (cluster-preferred-endpoint-type
     * hostname), with the address the map gives beside each: for MOVED
     * and ASK, which name the node only */
    char                                names[NGX_HTTP_SMARTY_CLUSTER_NODES]
                                             [SMARTY_CLUSTER_HOST_LEN];
    char                                ips[NGX_HTTP_SMARTY_CLUSTER_NODES]
                                           [SMARTY_CLUSTER_HOST_LEN];
    ngx_uint_t                          nnames;
    ngx_uint_t                          unmapped; /* logged once: no map */
    unsigned                            exiting:1;
};


static ngx_http_smarty_redis_node_t *ngx_http_smarty_redis_cluster_node(
    ngx_http_smarty_redis_cluster_t *cl, const char *host, ngx_int_t port);
static ngx_int_t ngx_http_smarty_redis_cluster_error(void *data,
    ngx_http_smarty_redis_node_t *node, ngx_http_smarty_redis_cmd_t *cmd,
    redisReply *reply);
static void ngx_http_smarty_redis_cluster_down(void *data,
    ngx_http_smarty_redis_node_t *node);
static void ngx_http_smarty_redis_cluster_soon(
    ngx_http_smarty_redis_cluster_t *cl);
static void ngx_http_smarty_redis_cluster_refresh(ngx_event_t *ev);
static void ngx_http_smarty_redis_cluster_map(
    ngx_http_smarty_redis_status_e status, redisReply *reply, void *data);
static ngx_int_t ngx_http_smarty_redis_cluster_apply(
    ngx_http_smarty_redis_cluster_t *cl, ngx_http_smarty_redis_node_t *from,
    redisReply *reply);
static void ngx_http_smarty_redis_cluster_dispatch(
    ngx_http_smarty_redis_cluster_t *cl, ngx_queue_t *queue);
static void ngx_http_smarty_redis_cluster_again(ngx_event_t *ev);
static ngx_int_t ngx_http_smarty_redis_cluster_address(
    ngx_http_smarty_redis_cluster_t *cl, char *host, redisReply *m);


ngx_http_smarty_redis_cluster_t *
ngx_http_smarty_redis_cluster_create(ngx_http_smarty_redis_settings_t *settings,
    ngx_http_smarty_redis_addr_t *seeds, ngx_uint_t nseeds, ngx_log_t *log)
{
    ngx_uint_t                        i;
    ngx_http_smarty_redis_cluster_t  *cl;

    cl = ngx_calloc(sizeof(ngx_http_smarty_redis_cluster_t), log);
    if (cl == NULL) {
        return NULL;
    }

    cl->slots = ngx_calloc(SMARTY_CLUSTER_SLOTS
                           * sizeof(ngx_http_smarty_redis_node_t *), log);
    if (cl->slots == NULL) {
        ngx_free(cl);
        return NULL;
    }

    cl->settings = settings;
    cl->log = log;

    cl->hooks.error = ngx_http_smarty_redis_cluster_error;
    cl->hooks.down = ngx_http_smarty_redis_cluster_down;
    cl->hooks.data = cl;

    ngx_queue_init(&cl->pending);
    ngx_queue_init(&cl->again);

    cl->again_ev.handler = ngx_http_smarty_redis_cluster_again;
    cl->again_ev.data = cl;
    cl->again_ev.log = log;

    cl->refresh.handler = ngx_http_smarty_redis_cluster_refresh;
    cl->refresh.data = cl;
    cl->refresh.log = log;
    cl->refresh.cancelable = 1;

    for (i = 0; i < nseeds && i < NGX_HTTP_SMARTY_CLUSTER_NODES; i++) {
        if (ngx_http_smarty_redis_cluster_node(cl,
                                            (const char *) seeds[i].host.data,
                                            seeds[i].port)
            == NULL)
        {
            return NULL;
        }
    }

    cl->nseeds = cl->nnodes;

    /* the map as soon as a seed is connected (its command queues) */
    ngx_add_timer(&cl->refresh, 1);

    return cl;
}


/* the node of host:port, made when first named */

static ngx_http_smarty_redis_node_t *
ngx_http_smarty_redis_cluster_node(ngx_http_smarty_redis_cluster_t *cl,
    const char *host, ngx_int_t port)
{
    u_char                         buf[SMARTY_CLUSTER_HOST_LEN + 16];
    ngx_str_t                      addr, h;
    ngx_uint_t                     i;
    ngx_http_smarty_redis_node_t  *node;

    for (i = 0; i < cl->nnodes; i++) {
        if (ngx_http_smarty_redis_node_is(cl->nodes[i], host, port)) {
            return cl->nodes[i];
        }
    }

    if (cl->nnodes == NGX_HTTP_SMARTY_CLUSTER_NODES) {
        ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                      "smarty_redis: the cluster has more than %d nodes, "
                      "%s:%i is not used", NGX_HTTP_SMARTY_CLUSTER_NODES,
                      host, port);
        return NULL;
    }

    h.data = (u_char *) host;
    h.len = ngx_strlen(host);

    addr.data = buf;
    addr.len = ngx_snprintf(buf, sizeof(buf),
                            ngx_strchr(host, ':') ? "[%V]:%i" : "%V:%i",
                            &h, port)
               - buf;

    node = ngx_http_smarty_redis_node_create(cl->settings, &addr, &h, port, 0,
                                             &cl->hooks, cl->log);
    if (node == NULL) {
        return NULL;
    }

    cl->nodes[cl->nnodes++] = node;

    return node;
}


void
ngx_http_smarty_redis_cluster_send(ngx_http_smarty_redis_cluster_t *cl,
    ngx_http_smarty_redis_cmd_t *cmd, ngx_msec_t timeout)
{
    ngx_uint_t                     i, slot;
    ngx_http_smarty_redis_node_t  *node;

    if (timeout == 0) {
        timeout = cl->settings->timeout;
    }

    if (!cl->mapped) {
        ngx_http_smarty_redis_cmd_hold(&cl->pending, cmd, timeout);
        ngx_http_smarty_redis_cluster_soon(cl);
        return;
    }

    node = NULL;

    if (cmd->key >= 0) {
        slot = smarty_cluster_slot(cmd->argv[cmd->key],
                                   cmd->argvlen[cmd->key]);
        node = cl->slots[slot];

    } else {
        /* no key: any master that is ready, else the first one */

        for (i = 0; i < SMARTY_CLUSTER_SLOTS; i++) {
            if (cl->slots[i]
                && ngx_http_smarty_redis_node_ready(cl->slots[i]))
            {
                node = cl->slots[i];
                break;
            }
        }

        if (node == NULL) {
            node = cl->slots[0];
        }
    }

    if (node == NULL) {
        /* a slot no master serves (the cluster is down for it) */
        ngx_http_smarty_redis_cluster_soon(cl);
        ngx_http_smarty_redis_cmd_refuse(cmd,
                                         NGX_HTTP_SMARTY_REDIS_NOT_CONNECTED);
        return;
    }

    ngx_http_smarty_redis_node_send(node, cmd, timeout);
}


ngx_http_smarty_redis_status_e
ngx_http_smarty_redis_cluster_state(ngx_http_smarty_redis_cluster_t *cl)
{
    ngx_uint_t                       i;
    ngx_http_smarty_redis_status_e   st, best;

    best = NGX_HTTP_SMARTY_REDIS_NOT_CONNECTED;

    for (i = 0; i < cl->nnodes; i++) {
        if (ngx_http_smarty_redis_node_retired(cl->nodes[i])) {
            continue;
        }

        st = ngx_http_smarty_redis_node_state(cl->nodes[i]);

        if (st == NGX_HTTP_SMARTY_REDIS_OK) {
            /* the map is known or asked for: commands go or wait for it */
            return NGX_HTTP_SMARTY_REDIS_OK;
        }

        if (st == NGX_HTTP_SMARTY_REDIS_BREAKER_OPEN) {
            best = st;
        }
    }

    return best;
}


ngx_int_t
ngx_http_smarty_redis_cluster_ready(ngx_http_smarty_redis_cluster_t *cl)
{
    ngx_uint_t  i;

    if (!cl->mapped) {
        return 0;
    }

    for (i = 0; i < cl->nnodes; i++) {
        if (!ngx_http_smarty_redis_node_retired(cl->nodes[i])
            && ngx_http_smarty_redis_node_ready(cl->nodes[i]))
        {
            return 1;
        }
    }

    return 0;
}


ngx_uint_t
ngx_http_smarty_redis_cluster_nodes(ngx_http_smarty_redis_cluster_t *cl,
    ngx_http_smarty_redis_node_info_t *info, ngx_uint_t n)
{
    ngx_uint_t  i;

    for (i = 0; i < cl->nnodes && i < n; i++) {
        ngx_http_smarty_redis_node_info(cl->nodes[i], &info[i]);
        info[i].role = cl->owns[i] ? "master" : "unused";
    }

    return cl->nnodes;
}


void
ngx_http_smarty_redis_cluster_close(ngx_http_smarty_redis_cluster_t *cl)
{
    ngx_uint_t  i;

    cl->exiting = 1;

    if (cl->refresh.timer_set) {
        ngx_del_timer(&cl->refresh);
    }

    for (i = 0; i < cl->nnodes; i++) {
        ngx_http_smarty_redis_node_close(cl->nodes[i]);
    }

    /* held commands keep their timers; their handlers are not called */
}


/* --- the nodes' replies --------------------------------------------------- */


static ngx_int_t
ngx_http_smarty_redis_cluster_error(void *data,
    ngx_http_smarty_redis_node_t *node, ngx_http_smarty_redis_cmd_t *cmd,
    redisReply *reply)
{
    ngx_http_smarty_redis_cluster_t *cl = data;

    ngx_uint_t                     i;
    smarty_redirect_t              r;
    ngx_http_smarty_redis_node_t  *to;

    if (cl->exiting) {
        return NGX_DECLINED;
    }

    switch (smarty_cluster_redirect(reply->str, reply->len, &r)) {

    case SMARTY_REDIRECT_TRYAGAIN:
        /* keys of a slot on both sides of a migration: in a moment */
        ngx_http_smarty_redis_cmd_hold(&cl->again, cmd, 0);

        if (!cl->again_ev.timer_set) {
            ngx_add_timer(&cl->again_ev, NGX_HTTP_SMARTY_CLUSTER_TRYAGAIN);
        }

        return NGX_OK;

    case SMARTY_REDIRECT_CLUSTERDOWN:
        ngx_http_smarty_redis_cluster_soon(cl);
        return NGX_DECLINED;

    case SMARTY_REDIRECT_MOVED:
    case SMARTY_REDIRECT_ASK:
        break;

    default:
        return NGX_DECLINED;
    }

    if (++cmd->redirects > NGX_HTTP_SMARTY_CLUSTER_REDIRECTS) {
        ngx_log_error(NGX_LOG_WARN, cl->log, 0,
                      "smarty_redis: a command was redirected more than %d "
                      "times, last by %V", NGX_HTTP_SMARTY_CLUSTER_REDIRECTS,
                      ngx_http_smarty_redis_node_addr(node));
        ngx_http_smarty_redis_cluster_soon(cl);
        return NGX_DECLINED;
    }

    if (ngx_http_smarty_redis_cluster_address(cl, r.host, NULL) != NGX_OK) {
        /* a name the map has not given an address of yet */
        ngx_http_smarty_redis_cluster_soon(cl);
        return NGX_DECLINED;
    }

    to = ngx_http_smarty_redis_cluster_node(cl, r.host, r.port);
    if (to == NULL) {
        return NGX_DECLINED;
    }

    ngx_http_smarty_redis_node_revive(to);

    if (r.type == SMARTY_REDIRECT_MOVED) {
        /* the slot lives there now; the rest of the map may have moved */
        cl->slots[r.slot] = to;

        for (i = 0; i < cl->nnodes; i++) {
            if (cl->nodes[i] == to) {
                cl->owns[i] = 1;
            }
        }

        ngx_http_smarty_redis_cluster_soon(cl);

    } else {
        cmd->asking = 1;
    }

    ngx_http_smarty_redis_node_send(to, cmd, 0);

    return NGX_OK;
}


static void
ngx_http_smarty_redis_cluster_down(void *data,
    ngx_http_smarty_redis_node_t *node)
{
    ngx_http_smarty_redis_cluster_t *cl = data;

    /* a master lost: maybe a failover; the map tells */
    ngx_http_smarty_redis_cluster_soon(cl);
}


static void
ngx_http_smarty_redis_cluster_again(ngx_event_t *ev)
{
    ngx_http_smarty_redis_cluster_t *cl = ev->data;

    ngx_http_smarty_redis_cluster_dispatch(cl, &cl->again);
}


/* the held commands, sent again (each keeps its own timer) */

static void
ngx_http_smarty_redis_cluster_dispatch(ngx_http_smarty_redis_cluster_t *cl,
    ngx_queue_t *queue)
{
    ngx_queue_t                   all, *q;
    ngx_http_smarty_redis_cmd_t  *cmd;

    if (ngx_queue_empty(queue)) {
        return;
    }

    /* those held again while this runs wait for the next round */

    all = *queue;
    all.next->prev = &all;
    all.prev->next = &all;
    ngx_queue_init(queue);

    while (!ngx_queue_empty(&all)) {
        q = ngx_queue_head(&all);
        cmd = ngx_queue_data(q, ngx_http_smarty_redis_cmd_t, queue);

        ngx_queue_remove(q);
        cmd->held = 0;

        ngx_http_smarty_redis_cluster_send(cl, cmd, 0);
    }
}


/* --- the slot map --------------------------------------------------------- */


static void
ngx_http_smarty_redis_cluster_soon(ngx_http_smarty_redis_cluster_t *cl)
{
    ngx_msec_t  delay, since;

    if (cl->exiting || cl->query) {
        return;
    }

    since = ngx_current_msec - cl->last;
    delay = since >= NGX_HTTP_SMARTY_CLUSTER_SOON
            ? 1 : NGX_HTTP_SMARTY_CLUSTER_SOON - since;

    if (cl->refresh.timer_set) {
        if (cl->refresh.timer.key <= ngx_current_msec + delay) {
            return;
        }

        ngx_del_timer(&cl->refresh);
    }

    ngx_add_timer(&cl->refresh, delay);
}


static void
ngx_http_smarty_redis_cluster_refresh(ngx_event_t *ev)
{
    ngx_http_smarty_redis_cluster_t *cl = ev->data;

    size_t                          len[2];
    ngx_uint_t                      i, k;
    const char                     *argv[2];
    ngx_http_smarty_redis_node_t   *node;

    if (cl->exiting || cl->query) {
        return;
    }

    /* the next node that would take a command, in turn */

    node = NULL;

    for (i = 0; i < cl->nnodes; i++) {
        k = (cl->next + i) % cl->nnodes;

        if (!ngx_http_smarty_redis_node_retired(cl->nodes[k])
            && ngx_http_smarty_redis_node_state(cl->nodes[k])
               == NGX_HTTP_SMARTY_REDIS_OK)
        {
            node = cl->nodes[k];
            cl->next = k + 1;
            break;
        }
    }

    if (node == NULL) {
        /* nothing reachable now: the nodes reconnect; ask again then */
        ngx_add_timer(&cl->refresh, NGX_HTTP_SMARTY_CLUSTER_FAILING);
        return;
    }

    argv[0] = "CLUSTER";
    len[0] = sizeof("CLUSTER") - 1;
    argv[1] = "SLOTS";
    len[1] = sizeof("SLOTS") - 1;

    cl->query = ngx_http_smarty_redis_cmd_create(
                                       ngx_http_smarty_redis_cluster_map, cl,
                                       2, argv, len, -1);
    if (cl->query == NULL) {
        ngx_add_timer(&cl->refresh, NGX_HTTP_SMARTY_CLUSTER_PERIOD);
        return;
    }

    cl->last = ngx_current_msec;

    /* this node's view is the answer: not redirected */
    cl->query->redirects = NGX_HTTP_SMARTY_CLUSTER_REDIRECTS;

    ngx_http_smarty_redis_node_send(node, cl->query,
                                    cl->settings->connect_timeout
                                    + cl->settings->timeout);
}


static void
ngx_http_smarty_redis_cluster_map(ngx_http_smarty_redis_status_e status,
    redisReply *reply, void *data)
{
    ngx_http_smarty_redis_cluster_t *cl = data;

    ngx_uint_t                     i, failing;
    ngx_http_smarty_redis_node_t  *from;

    from = cl->query ? cl->query->node : NULL;
    cl->query = NULL;

    if (cl->exiting) {
        return;
    }

    if (status != NGX_HTTP_SMARTY_REDIS_OK
        || ngx_http_smarty_redis_cluster_apply(cl, from, reply) != NGX_OK)
    {
        if (status == NGX_HTTP_SMARTY_REDIS_OK && !cl->unmapped) {
            /* once until a map comes: a cluster being made says it often */
            cl->unmapped = 1;

            ngx_log_error(NGX_LOG_WARN, cl->log, 0,
                          "smarty_redis: %V did not answer CLUSTER SLOTS "
                          "with a slot map%s%*s",
                          ngx_http_smarty_redis_node_addr(from),
                          reply->type == REDIS_REPLY_ERROR ? ": " : "",
                          reply->type == REDIS_REPLY_ERROR
                          ? (reply->len > 80 ? (size_t) 80 : reply->len)
                          : (size_t) 0,
                          reply->type == REDIS_REPLY_ERROR ? reply->str : "");
        }

        ngx_add_timer(&cl->refresh, NGX_HTTP_SMARTY_CLUSTER_SOON);
        return;
    }

    cl->unmapped = 0;

    ngx_http_smarty_redis_cluster_dispatch(cl, &cl->pending);

    /* a master of the map unreachable: a failover may be under way */

    failing = 0;

    for (i = 0; i < cl->nnodes; i++) {
        if (cl->owns[i]
            && ngx_http_smarty_redis_node_state(cl->nodes[i])
               != NGX_HTTP_SMARTY_REDIS_OK)
        {
            failing = 1;
        }
    }

    if (!cl->refresh.timer_set) {
        ngx_add_timer(&cl->refresh, failing ? NGX_HTTP_SMARTY_CLUSTER_FAILING
                                            : NGX_HTTP_SMARTY_CLUSTER_PERIOD);
    }
}


/*
 * CLUSTER SLOTS: [[start, end, [ip, port, id, meta], replicas ...], ...].
 * An empty ip is the node asked; a name (cluster-preferred-endpoint-type
 * hostname) stands for the address in its meta's "ip".
 */

static ngx_int_t
ngx_http_smarty_redis_cluster_apply(ngx_http_smarty_redis_cluster_t *cl,
    ngx_http_smarty_redis_node_t *from, redisReply *reply)
{
    char                           host[SMARTY_CLUSTER_HOST_LEN];
    size_t                         i, j;
    ngx_uint_t                     s, covered, level;
    redisReply                    *range, *m;
    ngx_http_smarty_redis_node_t  *node, **slots;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) {
        return NGX_ERROR;
    }

    slots = ngx_calloc(SMARTY_CLUSTER_SLOTS
                       * sizeof(ngx_http_smarty_redis_node_t *), cl->log);
    if (slots == NULL) {
        return NGX_ERROR;
    }

    covered = 0;

    for (i = 0; i < reply->elements; i++) {
        range = reply->element[i];

        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3
            || range->element[0]->type != REDIS_REPLY_INTEGER
            || range->element[1]->type != REDIS_REPLY_INTEGER
            || range->element[2]->type != REDIS_REPLY_ARRAY
            || range->element[2]->elements < 2)
        {
            continue;
        }

        m = range->element[2];

        if (m->element[0]->type != REDIS_REPLY_STRING
            || m->element[1]->type != REDIS_REPLY_INTEGER
            || range->element[0]->integer < 0
            || range->element[1]->integer >= SMARTY_CLUSTER_SLOTS
            || range->element[0]->integer > range->element[1]->integer)
        {
            continue;
        }

        if (m->element[0]->len == 0 && from != NULL) {
            /* "the endpoint you asked" */
            ngx_cpystrn((u_char *) host,
                        ngx_http_smarty_redis_node_addr(from)->data,
                        ngx_min(sizeof(host),
                                ngx_http_smarty_redis_node_addr(from)->len
                                + 1));

            for (j = ngx_strlen(host); j > 0; j--) {
                if (host[j - 1] == ':') {
                    host[j - 1] = '\0';
                    break;
                }
            }

        } else if (m->element[0]->len < sizeof(host)) {
            ngx_memcpy(host, m->element[0]->str, m->element[0]->len);
            host[m->element[0]->len] = '\0';

        } else {
            continue;
        }

        if (ngx_http_smarty_redis_cluster_address(cl, host, m) != NGX_OK) {
            continue;
        }

        node = ngx_http_smarty_redis_cluster_node(cl, host,
                                                  m->element[1]->integer);
        if (node == NULL) {
            continue;
        }

        for (s = (ngx_uint_t) range->element[0]->integer;
             s <= (ngx_uint_t) range->element[1]->integer;
             s++)
        {
            if (slots[s] == NULL) {
                covered++;
            }

            slots[s] = node;
        }
    }

    if (covered == 0) {
        ngx_free(slots);
        return NGX_ERROR;
    }

    level = (covered < SMARTY_CLUSTER_SLOTS) ? NGX_LOG_WARN : NGX_LOG_INFO;

    if (!cl->mapped || covered < SMARTY_CLUSTER_SLOTS) {
        ngx_log_error(level, cl->log, 0,
                      "smarty_redis: cluster slot map from %V: %ui of %d "
                      "slots served", ngx_http_smarty_redis_node_addr(from),
                      covered, SMARTY_CLUSTER_SLOTS);
    }

    ngx_memcpy(cl->slots, slots,
               SMARTY_CLUSTER_SLOTS * sizeof(ngx_http_smarty_redis_node_t *));
    ngx_free(slots);

    cl->mapped = 1;

    /* masters no more (failed over, removed): not reconnected; the seeds
     * stay, to ask for the map */

    ngx_memzero(cl->owns, sizeof(cl->owns));

    for (s = 0; s < SMARTY_CLUSTER_SLOTS; s++) {
        for (i = 0; i < cl->nnodes; i++) {
            if (cl->slots[s] == cl->nodes[i]) {
                cl->owns[i] = 1;
                break;
            }
        }
    }

    for (i = 0; i < cl->nnodes; i++) {
        if (cl->owns[i]) {
            ngx_http_smarty_redis_node_revive(cl->nodes[i]);

        } else if (i >= cl->nseeds) {
            ngx_http_smarty_redis_node_retire(cl->nodes[i],
                                              "not a master of the cluster");
        }
    }

    return NGX_OK;
}


/*
 * host as an address to connect to, in place: an address already; a name
 * the node's entry in the map gives the address of (m: its
 * [name, port, id, ["ip", address, ...]]), learnt for the MOVED and ASK
 * that name it; or a name learnt before.  A worker resolves no name:
 * NGX_DECLINED for one with no address, logged once.
 */

static ngx_int_t
ngx_http_smarty_redis_cluster_address(ngx_http_smarty_redis_cluster_t *cl,
    char *host, redisReply *m)
{
    char         address[SMARTY_CLUSTER_HOST_LEN];
    size_t       k;
    ngx_uint_t   i;
    redisReply  *meta, *key, *val;

    if (smarty_cluster_numeric(host)) {
        return NGX_OK;
    }

    if (m != NULL && m->elements >= 4
        && m->element[3]->type == REDIS_REPLY_ARRAY)
    {
        meta = m->element[3];

        for (k = 0; k + 1 < meta->elements; k += 2) {
            key = meta->element[k];
            val = meta->element[k + 1];

            if (key->type != REDIS_REPLY_STRING
                || val->type != REDIS_REPLY_STRING
                || key->len != 2 || ngx_strncmp(key->str, "ip", 2) != 0
                || val->len >= SMARTY_CLUSTER_HOST_LEN)
            {
                continue;
            }

            ngx_memcpy(address, val->str, val->len);
            address[val->len] = '\0';

            if (!smarty_cluster_numeric(address)) {
                break;
            }

            /* "?": a node with no name of the preferred kind */

            if (ngx_strcmp(host, "?") != 0) {
                for (i = 0; i < cl->nnames; i++) {
                    if (ngx_strcmp(cl->names[i], host) == 0) {
                        break;
                    }
                }

                if (i < NGX_HTTP_SMARTY_CLUSTER_NODES) {
                    if (i == cl->nnames) {
                        cl->nnames++;
                        ngx_cpystrn((u_char *) cl->names[i], (u_char *) host,
                                    SMARTY_CLUSTER_HOST_LEN);
                    }

                    ngx_cpystrn((u_char *) cl->ips[i], (u_char *) address,
                                SMARTY_CLUSTER_HOST_LEN);
                }
            }

            ngx_cpystrn((u_char *) host, (u_char *) address,
                        SMARTY_CLUSTER_HOST_LEN);
            return NGX_OK;
        }
    }

    for (i = 0; i < cl->nnames; i++) {
        if (ngx_strcmp(cl->names[i], host) == 0) {
            ngx_cpystrn((u_char *) host, (u_char *) cl->ips[i],
                        SMARTY_CLUSTER_HOST_LEN);
            return NGX_OK;
        }
    }

    if (!cl->named) {
        cl->named = 1;
        ngx_log_error(NGX_LOG_WARN, cl->log, 0,
                      "smarty_redis: a cluster node is announced by the name "
                      "\"%s\" with no address beside it (CLUSTER SLOTS), "
                      "and a worker does not resolve names: announce IP "
                      "addresses, or run Redis 7 or later", host);
    }

    return NGX_DECLINED;
}
