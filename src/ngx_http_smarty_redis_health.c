/*
 * smarty-gateway: Redis's health endpoint (smarty_redis_health,
 * docs/redis.md): one script's round trip through the command API, its
 * latency, or why Redis is down.
 */

#include "ngx_http_smarty_redis.h"
#include "ngx_http_smarty_reply.h"


#define NGX_HTTP_SMARTY_REDIS_HEALTH_KEY   "smarty:health"


typedef struct {
    size_t                              allow_size;   /* "?size=" limit */
} ngx_http_smarty_redis_health_conf_t;


typedef struct {
    ngx_http_request_t                 *request;
    ngx_http_smarty_redis_cmd_t        *cmd;
    ngx_msec_t                          start;
    size_t                              size;
    unsigned                            sized:1;
    u_char                              token[NGX_INT64_LEN * 2 + 2];
    size_t                              token_len;
} ngx_http_smarty_redis_health_ctx_t;


static ngx_int_t ngx_http_smarty_redis_health_handler(ngx_http_request_t *r);
static void ngx_http_smarty_redis_health_done(
    ngx_http_smarty_redis_status_e status, redisReply *reply, void *data);
static ngx_int_t ngx_http_smarty_redis_health_send(ngx_http_request_t *r,
    ngx_http_smarty_redis_health_ctx_t *ctx,
    ngx_http_smarty_redis_status_e status, redisReply *reply);
static void ngx_http_smarty_redis_health_cleanup(void *data);
static void *ngx_http_smarty_redis_health_create_conf(ngx_conf_t *cf);
static char *ngx_http_smarty_redis_health_merge_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_smarty_redis_health(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


static ngx_uint_t  ngx_http_smarty_redis_health_serial;


static ngx_command_t  ngx_http_smarty_redis_health_commands[] = {

    { ngx_string("smarty_redis_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_smarty_redis_health,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_smarty_redis_health_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_smarty_redis_health_create_conf, /* create location conf */
    ngx_http_smarty_redis_health_merge_conf   /* merge location conf */
};


ngx_module_t  ngx_http_smarty_redis_health_module = {
    NGX_MODULE_V1,
    &ngx_http_smarty_redis_health_module_ctx, /* module context */
    ngx_http_smarty_redis_health_commands, /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


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
    ngx_http_smarty_redis_health_conf_t    *rlcf;
    ngx_http_smarty_redis_health_ctx_t  *ctx;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    rlcf = ngx_http_get_module_loc_conf(r,
                                      ngx_http_smarty_redis_health_module);

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
    size_t       bytes;
    ngx_buf_t   *b;
    ngx_uint_t   up;
    const char  *reason;

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

    return ngx_http_smarty_reply_buf(r, up ? NGX_HTTP_OK
                                           : NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "application/json", b);
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
ngx_http_smarty_redis_health_create_conf(ngx_conf_t *cf)
{
    ngx_http_smarty_redis_health_conf_t  *rlcf;

    rlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_redis_health_conf_t));
    if (rlcf == NULL) {
        return NULL;
    }

    rlcf->allow_size = NGX_CONF_UNSET_SIZE;

    return rlcf;
}


static char *
ngx_http_smarty_redis_health_merge_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_smarty_redis_health_conf_t *prev = parent;
    ngx_http_smarty_redis_health_conf_t *conf = child;

    ngx_conf_merge_size_value(conf->allow_size, prev->allow_size, 0);

    return NGX_CONF_OK;
}


/* smarty_redis_health [allow_size=size] */

static char *
ngx_http_smarty_redis_health(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_smarty_redis_health_conf_t *rlcf = conf;

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
