/*
 * smarty-gateway: quota states in this instance's shared memory, the
 * fallback store (see ngx_http_smarty_quota_store.h, docs/quota.md).
 *
 * While Redis is away, an instance decides alone, with every limit scaled
 * by the configured share, on states kept in one shared memory zone
 * ("smarty_quota") that its workers share.  The arithmetic is the core's
 * (smarty_quota_check/refund/peek); this file only stores the states.
 *
 * A state is a node of an rbtree keyed by the CRC32 of its key (the Redis
 * key of the limit), the keys compared on a tie, and of a queue of the
 * nodes, the most recently used first.  A node remembers when its state
 * stops mattering (a GCRA debt drained, a window over, plus
 * SMARTY_QUOTA_SLACK_MS, as the PX of the Redis key): such a node reads
 * as a fresh state, and each check frees a few of them from the queue's
 * tail.  A node is created only when an admitted request writes a state
 * that is not fresh: a refused request, or a limit it spends nothing on,
 * leaves nothing behind.  A full zone evicts the least recently used
 * nodes, live or not, and when even that leaves no room the request is
 * admitted uncounted (a full zone must not refuse traffic).
 */

#include "ngx_http_smarty_quota_store.h"


#define SMARTY_QUOTA_LOCAL_REAP     3      /* expired nodes freed per check */
#define SMARTY_QUOTA_LOCAL_EVICT    16     /* nodes evicted, at most */
#define SMARTY_QUOTA_LOCAL_KEY_MAX  65535  /* a key's bytes: the u_short */


typedef struct {
    u_char                              color;
    u_char                              dummy;
    u_short                             len;
    ngx_queue_t                         queue;
    int64_t                             expire;   /* ms, wall clock */
    smarty_quota_state_t                state;
    u_char                              data[1];
} ngx_http_smarty_quota_node_t;


typedef struct {
    ngx_rbtree_t                        rbtree;
    ngx_rbtree_node_t                   sentinel;
    ngx_queue_t                         queue;    /* most recent first */
} ngx_http_smarty_quota_shctx_t;


typedef struct {
    ngx_http_smarty_quota_shctx_t      *sh;
    ngx_slab_pool_t                    *shpool;
} ngx_http_smarty_quota_local_ctx_t;


static ngx_int_t ngx_http_smarty_quota_local_check(
    ngx_http_smarty_quota_call_t *c);
static void ngx_http_smarty_quota_local_refund(
    ngx_http_smarty_quota_call_t *c);
static ngx_int_t ngx_http_smarty_quota_local_peek(
    ngx_http_smarty_quota_call_t *c);
static void ngx_http_smarty_quota_local_cancel(
    ngx_http_smarty_quota_call_t *c);
static ngx_int_t ngx_http_smarty_quota_local_init_zone(
    ngx_shm_zone_t *shm_zone, void *data);
static void ngx_http_smarty_quota_local_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_http_smarty_quota_node_t *ngx_http_smarty_quota_local_lookup(
    ngx_http_smarty_quota_local_ctx_t *ctx, ngx_str_t *key, uint32_t hash);
static ngx_http_smarty_quota_node_t *ngx_http_smarty_quota_local_read(
    ngx_http_smarty_quota_local_ctx_t *ctx, ngx_str_t *key, uint32_t hash,
    smarty_quota_state_t *st);
static ngx_http_smarty_quota_node_t *ngx_http_smarty_quota_local_create(
    ngx_http_smarty_quota_local_ctx_t *ctx, ngx_str_t *key, uint32_t hash,
    ngx_http_smarty_quota_node_t **held, size_t nheld);
static void ngx_http_smarty_quota_local_free(
    ngx_http_smarty_quota_local_ctx_t *ctx, ngx_http_smarty_quota_node_t *qn);
static void ngx_http_smarty_quota_local_reap(
    ngx_http_smarty_quota_local_ctx_t *ctx, int64_t now);
static ngx_int_t ngx_http_smarty_quota_local_evict(
    ngx_http_smarty_quota_local_ctx_t *ctx,
    ngx_http_smarty_quota_node_t **held, size_t nheld);
static void ngx_http_smarty_quota_local_scale(smarty_quota_item_t *items,
    smarty_quota_limit_t *scaled, size_t n, ngx_uint_t num, ngx_uint_t den);
static uint64_t ngx_http_smarty_quota_local_share(uint64_t v, uint64_t num,
    uint64_t den);
static int64_t ngx_http_smarty_quota_local_expiry(
    const smarty_quota_limit_t *l, const smarty_quota_state_t *st);


const ngx_http_smarty_quota_store_t  ngx_http_smarty_quota_local_store = {
    "local",
    ngx_http_smarty_quota_local_check,
    ngx_http_smarty_quota_local_refund,
    ngx_http_smarty_quota_local_peek,
    ngx_http_smarty_quota_local_cancel
};


ngx_shm_zone_t *
ngx_http_smarty_quota_local_zone(ngx_conf_t *cf, size_t size, void *tag)
{
    ngx_str_t                           name;
    ngx_shm_zone_t                     *shm_zone;
    ngx_http_smarty_quota_local_ctx_t  *ctx;

    ngx_str_set(&name, "smarty_quota");

    shm_zone = ngx_shared_memory_add(cf, &name, size, tag);
    if (shm_zone == NULL) {
        return NULL;
    }

    if (shm_zone->data) {
        /* already added by this configuration */
        return shm_zone;
    }

    ctx = ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_quota_local_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    shm_zone->init = ngx_http_smarty_quota_local_init_zone;
    shm_zone->data = ctx;

    return shm_zone;
}


static ngx_int_t
ngx_http_smarty_quota_local_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_smarty_quota_local_ctx_t  *octx = data;

    size_t                              len;
    ngx_http_smarty_quota_local_ctx_t  *ctx;

    ctx = shm_zone->data;

    if (octx) {
        /* a reload with the zone kept: the states go on */
        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;

        return NGX_OK;
    }

    ctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        ctx->sh = ctx->shpool->data;

        return NGX_OK;
    }

    ctx->sh = ngx_slab_alloc(ctx->shpool,
                             sizeof(ngx_http_smarty_quota_shctx_t));
    if (ctx->sh == NULL) {
        return NGX_ERROR;
    }

    ctx->shpool->data = ctx->sh;

    ngx_rbtree_init(&ctx->sh->rbtree, &ctx->sh->sentinel,
                    ngx_http_smarty_quota_local_insert_value);

    ngx_queue_init(&ctx->sh->queue);

    len = sizeof(" in smarty_quota zone \"\"") + shm_zone->shm.name.len;

    ctx->shpool->log_ctx = ngx_slab_alloc(ctx->shpool, len);
    if (ctx->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(ctx->shpool->log_ctx, " in smarty_quota zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is logged here, once per request, not by the slab */
    ctx->shpool->log_nomem = 0;

    return NGX_OK;
}


/*
 * Check and spend.  The states are read and written under the zone's
 * mutex, and the decision is taken under it: the workers of an instance
 * are exact together, as the instances are in Redis.
 */

static ngx_int_t
ngx_http_smarty_quota_local_check(ngx_http_smarty_quota_call_t *c)
{
    u_char                              created[SMARTY_QUOTA_MAX_ITEMS];
    size_t                              i, j, n;
    int64_t                             now;
    ngx_str_t                          *keys;
    ngx_log_t                          *log;
    smarty_quota_item_t                *items;
    uint32_t                            hash[SMARTY_QUOTA_MAX_ITEMS];
    ngx_int_t                           rc;
    smarty_quota_state_t               *st;
    ngx_http_smarty_quota_node_t       *node[SMARTY_QUOTA_MAX_ITEMS];
    ngx_http_smarty_quota_local_ctx_t  *ctx;

    n = c->n;
    keys = c->keys;
    items = c->items;
    log = c->log;
    now = ngx_http_smarty_quota_clock();

    for (i = 0; i < n; i++) {
        items[i].limit = c->limits[i];
        items[i].state = &c->states[i];
    }

    if (c->zone == NULL) {
        /* no zone: the limits as they are, nothing counted */
        return NGX_ERROR;
    }

    if (n > SMARTY_QUOTA_MAX_ITEMS) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "smarty quota: %uz limits for one request, at most %d",
                      n, SMARTY_QUOTA_MAX_ITEMS);
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {

        if (keys[i].len > SMARTY_QUOTA_LOCAL_KEY_MAX) {
            ngx_log_error(NGX_LOG_ALERT, log, 0,
                          "smarty quota: a key of %uz bytes, at most %d",
                          keys[i].len, SMARTY_QUOTA_LOCAL_KEY_MAX);
            return NGX_ERROR;
        }

        hash[i] = ngx_crc32_short(keys[i].data, keys[i].len);
    }

    ngx_http_smarty_quota_local_scale(items, c->scaled, n, c->share_num,
                                      c->share_den);

    ctx = c->zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    ngx_http_smarty_quota_local_reap(ctx, now);

    for (i = 0; i < n; i++) {
        node[i] = ngx_http_smarty_quota_local_read(ctx, &keys[i], hash[i],
                                                   items[i].state);
        if (node[i] == NULL) {
            continue;
        }

        ngx_queue_remove(&node[i]->queue);
        ngx_queue_insert_head(&ctx->sh->queue, &node[i]->queue);
    }

    if (!smarty_quota_check(items, n, now, c->requests, c->images,
                            &c->res))
    {
        ngx_shmtx_unlock(&ctx->shpool->mutex);

        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, log, 0,
                       "smarty quota local: refused by %uz of %uz, "
                       "retry %L ms", c->res.refused, n, c->res.retry_ms);

        return NGX_DECLINED;
    }

    /* admitted: a node for every state that is no longer a fresh one */

    rc = NGX_OK;

    for (i = 0; i < n; i++) {
        created[i] = 0;
        st = items[i].state;

        if (node[i] != NULL || (st->t == 0 && st->v == 0)) {
            continue;
        }

        node[i] = ngx_http_smarty_quota_local_create(ctx, &keys[i], hash[i],
                                                     node, n);
        if (node[i] == NULL) {
            ngx_log_error(NGX_LOG_CRIT, log, 0,
                          "smarty quota: no room for the state of \"%V\"%s, "
                          "the request is admitted uncounted",
                          &keys[i], ctx->shpool->log_ctx);
            rc = NGX_ERROR;
            break;
        }

        created[i] = 1;
    }

    if (rc == NGX_ERROR) {

        /* all or nothing: nothing is written, and the new nodes go */

        for (j = 0; j < i; j++) {
            if (created[j]) {
                ngx_http_smarty_quota_local_free(ctx, node[j]);
            }
        }

        ngx_shmtx_unlock(&ctx->shpool->mutex);

        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (node[i] == NULL) {
            continue;
        }

        node[i]->state = *items[i].state;
        node[i]->expire = ngx_http_smarty_quota_local_expiry(items[i].limit,
                                                            items[i].state);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                   "smarty quota local: admitted on %uz limits", n);

    return NGX_OK;
}


/*
 * Give back.  The items are independent in a refund: each is done alone,
 * and a missing node is a fresh state, which has nothing to give back.
 */

static void
ngx_http_smarty_quota_local_refund(ngx_http_smarty_quota_call_t *c)
{
    size_t                              i, changed, k;
    int64_t                             now;
    uint32_t                            hash;
    smarty_quota_item_t                *items;
    smarty_quota_state_t               *st;
    ngx_http_smarty_quota_node_t       *qn;
    ngx_http_smarty_quota_local_ctx_t  *ctx;

    if (c->zone == NULL) {
        return;
    }

    items = c->items;
    now = ngx_http_smarty_quota_clock();

    for (i = 0; i < c->n; i++) {
        items[i].limit = c->limits[i];
        items[i].state = &c->states[i];
    }

    ngx_http_smarty_quota_local_scale(items, c->scaled, c->n, c->share_num,
                                      c->share_den);

    ctx = c->zone->data;
    changed = 0;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    for (i = 0; i < c->n; i++) {
        hash = ngx_crc32_short(c->keys[i].data, c->keys[i].len);
        qn = ngx_http_smarty_quota_local_read(ctx, &c->keys[i], hash,
                                              items[i].state);
        st = items[i].state;

        k = smarty_quota_refund(&items[i], 1, now, c->at, c->requests,
                                c->images);

        if (k == 0 || qn == NULL) {
            continue;
        }

        qn->state = *st;
        qn->expire = ngx_http_smarty_quota_local_expiry(items[i].limit, st);

        ngx_queue_remove(&qn->queue);
        ngx_queue_insert_head(&ctx->sh->queue, &qn->queue);

        changed += k;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "smarty quota local: refund changed %uz of %uz states",
                   changed, c->n);
}


/* the states as they are, read under the mutex; nothing is written */

static ngx_int_t
ngx_http_smarty_quota_local_peek(ngx_http_smarty_quota_call_t *c)
{
    size_t                              i;
    uint32_t                            hash;
    smarty_quota_item_t                *items;
    ngx_http_smarty_quota_local_ctx_t  *ctx;

    items = c->items;

    for (i = 0; i < c->n; i++) {
        items[i].limit = c->limits[i];
        items[i].state = &c->states[i];
        c->states[i].t = 0;
        c->states[i].v = 0;
    }

    if (c->zone != NULL) {
        ngx_http_smarty_quota_local_scale(items, c->scaled, c->n,
                                          c->share_num, c->share_den);

        ctx = c->zone->data;

        ngx_shmtx_lock(&ctx->shpool->mutex);

        for (i = 0; i < c->n; i++) {
            hash = ngx_crc32_short(c->keys[i].data, c->keys[i].len);
            (void) ngx_http_smarty_quota_local_read(ctx, &c->keys[i], hash,
                                                    items[i].state);
        }

        ngx_shmtx_unlock(&ctx->shpool->mutex);
    }

    smarty_quota_peek(items, c->n, ngx_http_smarty_quota_clock());

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "smarty quota local: peek at %uz limits", c->n);

    return NGX_OK;
}


static void
ngx_http_smarty_quota_local_cancel(ngx_http_smarty_quota_call_t *c)
{
    /* nothing is ever pending */
}


static void
ngx_http_smarty_quota_local_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t             **p;
    ngx_http_smarty_quota_node_t   *qn, *qnt;

    for ( ;; ) {

        if (node->key < temp->key) {

            p = &temp->left;

        } else if (node->key > temp->key) {

            p = &temp->right;

        } else { /* node->key == temp->key */

            qn = (ngx_http_smarty_quota_node_t *) &node->color;
            qnt = (ngx_http_smarty_quota_node_t *) &temp->color;

            p = (ngx_memn2cmp(qn->data, qnt->data, qn->len, qnt->len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static ngx_http_smarty_quota_node_t *
ngx_http_smarty_quota_local_lookup(ngx_http_smarty_quota_local_ctx_t *ctx,
    ngx_str_t *key, uint32_t hash)
{
    ngx_int_t                      rc;
    ngx_rbtree_node_t             *node, *sentinel;
    ngx_http_smarty_quota_node_t  *qn;

    node = ctx->sh->rbtree.root;
    sentinel = ctx->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        /* hash == node->key */

        qn = (ngx_http_smarty_quota_node_t *) &node->color;

        rc = ngx_memn2cmp(key->data, qn->data, key->len, (size_t) qn->len);

        if (rc == 0) {
            return qn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/* a key's state into st, fresh ({0, 0}) without a node; the node or NULL */

static ngx_http_smarty_quota_node_t *
ngx_http_smarty_quota_local_read(ngx_http_smarty_quota_local_ctx_t *ctx,
    ngx_str_t *key, uint32_t hash, smarty_quota_state_t *st)
{
    ngx_http_smarty_quota_node_t  *qn;

    qn = ngx_http_smarty_quota_local_lookup(ctx, key, hash);

    if (qn == NULL) {
        st->t = 0;
        st->v = 0;

    } else {
        *st = qn->state;
    }

    return qn;
}


/*
 * A node with a fresh state, at the queue's head; the zone's mutex is
 * held.  When the zone is full, the least recently used nodes are
 * evicted, live or not, one at a time until the allocation succeeds, at
 * most SMARTY_QUOTA_LOCAL_EVICT of them, and never one of held (the nodes
 * of the current call).
 */

static ngx_http_smarty_quota_node_t *
ngx_http_smarty_quota_local_create(ngx_http_smarty_quota_local_ctx_t *ctx,
    ngx_str_t *key, uint32_t hash, ngx_http_smarty_quota_node_t **held,
    size_t nheld)
{
    size_t                         size;
    ngx_uint_t                     k;
    ngx_rbtree_node_t             *node;
    ngx_http_smarty_quota_node_t  *qn;

    size = offsetof(ngx_rbtree_node_t, color)
           + offsetof(ngx_http_smarty_quota_node_t, data)
           + key->len;

    node = ngx_slab_alloc_locked(ctx->shpool, size);

    for (k = 0; node == NULL && k < SMARTY_QUOTA_LOCAL_EVICT; k++) {

        if (ngx_http_smarty_quota_local_evict(ctx, held, nheld) != NGX_OK) {
            break;
        }

        node = ngx_slab_alloc_locked(ctx->shpool, size);
    }

    if (node == NULL) {
        return NULL;
    }

    node->key = hash;

    qn = (ngx_http_smarty_quota_node_t *) &node->color;

    qn->len = (u_short) key->len;
    qn->expire = 0;
    qn->state.t = 0;
    qn->state.v = 0;

    ngx_memcpy(qn->data, key->data, key->len);

    ngx_rbtree_insert(&ctx->sh->rbtree, node);

    ngx_queue_insert_head(&ctx->sh->queue, &qn->queue);

    return qn;
}


static void
ngx_http_smarty_quota_local_free(ngx_http_smarty_quota_local_ctx_t *ctx,
    ngx_http_smarty_quota_node_t *qn)
{
    ngx_rbtree_node_t  *node;

    ngx_queue_remove(&qn->queue);

    node = (ngx_rbtree_node_t *)
               ((u_char *) qn - offsetof(ngx_rbtree_node_t, color));

    ngx_rbtree_delete(&ctx->sh->rbtree, node);

    ngx_slab_free_locked(ctx->shpool, node);
}


/*
 * Free up to SMARTY_QUOTA_LOCAL_REAP nodes whose state no longer matters,
 * from the queue's tail, until one whose state still matters.  Called
 * before the lookups: no node of the current call can go.
 */

static void
ngx_http_smarty_quota_local_reap(ngx_http_smarty_quota_local_ctx_t *ctx,
    int64_t now)
{
    ngx_uint_t                     k;
    ngx_queue_t                   *q;
    ngx_http_smarty_quota_node_t  *qn;

    for (k = 0; k < SMARTY_QUOTA_LOCAL_REAP; k++) {

        if (ngx_queue_empty(&ctx->sh->queue)) {
            return;
        }

        q = ngx_queue_last(&ctx->sh->queue);
        qn = ngx_queue_data(q, ngx_http_smarty_quota_node_t, queue);

        if (qn->expire > now) {
            /* a bounded look: past a live tail, eviction does the rest */
            return;
        }

        ngx_http_smarty_quota_local_free(ctx, qn);
    }
}


/*
 * The zone is full: free the least recently used node, live or not.
 * NGX_DECLINED when none can go: the queue is empty, or its tail is one
 * of held, the nodes of the current call, which were all moved to the
 * head (the tail reaching one of them means that only they are left).
 */

static ngx_int_t
ngx_http_smarty_quota_local_evict(ngx_http_smarty_quota_local_ctx_t *ctx,
    ngx_http_smarty_quota_node_t **held, size_t nheld)
{
    size_t                         i;
    ngx_queue_t                   *q;
    ngx_http_smarty_quota_node_t  *qn;

    if (ngx_queue_empty(&ctx->sh->queue)) {
        return NGX_DECLINED;
    }

    q = ngx_queue_last(&ctx->sh->queue);
    qn = ngx_queue_data(q, ngx_http_smarty_quota_node_t, queue);

    for (i = 0; i < nheld; i++) {
        if (held[i] == qn) {
            return NGX_DECLINED;
        }
    }

    ngx_http_smarty_quota_local_free(ctx, qn);

    return NGX_OK;
}


/* each item's limit scaled by the share num/den, into scaled */

static void
ngx_http_smarty_quota_local_scale(smarty_quota_item_t *items,
    smarty_quota_limit_t *scaled, size_t n, ngx_uint_t num, ngx_uint_t den)
{
    size_t  i;

    if (den == 0) {
        num = 1;
        den = 1;
    }

    for (i = 0; i < n; i++) {
        scaled[i] = *items[i].limit;

        scaled[i].count = ngx_http_smarty_quota_local_share(scaled[i].count,
                                                            num, den);
        scaled[i].burst = ngx_http_smarty_quota_local_share(scaled[i].burst,
                                                            num, den);

        items[i].limit = &scaled[i];
    }
}


/*
 * v * num / den rounded down, at least 1 and at most
 * SMARTY_QUOTA_MAX_COUNT (the core's arithmetic stays below 2^53 only
 * so), without computing v * num: with v <= 10^9 and num, den <= 10^6 no
 * term below exceeds 10^15.
 */

static uint64_t
ngx_http_smarty_quota_local_share(uint64_t v, uint64_t num, uint64_t den)
{
    uint64_t  r;

    r = v / den * num + v % den * num / den;

    if (r == 0) {
        return 1;
    }

    if (r > SMARTY_QUOTA_MAX_COUNT) {
        return SMARTY_QUOTA_MAX_COUNT;
    }

    return r;
}


/*
 * When a state stops mattering, as the PX of its Redis key (quota_core.lua):
 * a GCRA debt of v milli-units drains count a ms, in ceil(v / count) ms
 * from t, the clock it was written at; a window is over at t + its
 * length.  Then SMARTY_QUOTA_SLACK_MS more.
 */

static int64_t
ngx_http_smarty_quota_local_expiry(const smarty_quota_limit_t *l,
    const smarty_quota_state_t *st)
{
    int64_t  v, n;

    if (l->window == 's') {
        v = st->v > 0 ? st->v : 0;
        n = (int64_t) l->count;

        return st->t + v / n + (v % n != 0) + SMARTY_QUOTA_SLACK_MS;
    }

    return st->t + smarty_quota_window_ms(l->window) + SMARTY_QUOTA_SLACK_MS;
}
