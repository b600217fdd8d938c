/*
 * smarty-gateway: the call to the upstream (see ngx_http_smarty_upstream.h,
 * docs/reference.md).
 *
 * The subrequest to the "smarty_upstream" location:
 *
 *   - is a POST carrying the client's body bytes unchanged (it shares the
 *     parent's request_body: memory buffers or the temp file as they are),
 *     or the body it was given (the images the cache lacks);
 *   - has the client's headers minus Authorization, the client's key;
 *   - has a query string built from scratch: the gateway's oauth_provider
 *     and the token of the location's source, then only the client's
 *     parameters that smarty_upstream_args allows;
 *   - keeps the answer in memory (NGX_HTTP_SUBREQUEST_IN_MEMORY, within
 *     that location's subrequest_output_buffer_size), so the gateway
 *     decides what the client sees;
 *   - is made once more, with the same body, when the upstream refused
 *     the token (401, 403) and the token source has another one: the
 *     flow sees one call, the quota is spent once, no failure is cached.
 */

#include "ngx_http_smarty_upstream.h"
#include "ngx_http_smarty_token.h"
#include "smarty_args.h"


typedef struct {
    ngx_str_t                  location;   /* internal location prefix */
    ngx_array_t               *args;       /* names a client may pass */
} ngx_http_smarty_upstream_conf_t;


typedef struct {
    ngx_http_request_t        *sr;
    ngx_int_t                  rc;
    ngx_http_request_body_t   *rb;         /* NULL: the client's body */
    off_t                      len;
    ngx_str_t                  token;
    ngx_http_smarty_next_pt    next;
    ngx_msec_t                 start;      /* the first subrequest */
    ngx_msec_t                 end;        /* the last one's end */
    unsigned                   started:1;
    unsigned                   done:1;
    unsigned                   no_token:1;
    unsigned                   retried:1;   /* after a refused token */
    unsigned                   failed:1;    /* the retry could not start */
} ngx_http_smarty_upstream_ctx_t;


static ngx_int_t ngx_http_smarty_upstream_start(ngx_http_request_t *r,
    ngx_http_smarty_upstream_ctx_t *u);
static void ngx_http_smarty_upstream_token_ready(ngx_http_request_t *r);
static void ngx_http_smarty_upstream_done(ngx_http_request_t *r);
static ngx_int_t ngx_http_smarty_upstream_retry(ngx_http_request_t *r,
    ngx_http_smarty_upstream_ctx_t *u);
static ngx_int_t ngx_http_smarty_upstream_post(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
static ngx_int_t ngx_http_smarty_strip_credentials(ngx_http_request_t *r,
    ngx_http_request_t *sr);
static char *ngx_http_smarty_upstream_args_conf(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static void *ngx_http_smarty_upstream_create_conf(ngx_conf_t *cf);
static char *ngx_http_smarty_upstream_merge_conf(ngx_conf_t *cf,
    void *parent, void *child);


static ngx_command_t  ngx_http_smarty_upstream_commands[] = {

    { ngx_string("smarty_upstream"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_upstream_conf_t, location),
      NULL },

    { ngx_string("smarty_upstream_args"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_smarty_upstream_args_conf,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_smarty_upstream_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_smarty_upstream_create_conf,  /* create location configuration */
    ngx_http_smarty_upstream_merge_conf    /* merge location configuration */
};


ngx_module_t  ngx_http_smarty_upstream_module = {
    NGX_MODULE_V1,
    &ngx_http_smarty_upstream_module_ctx,  /* module context */
    ngx_http_smarty_upstream_commands,     /* module directives */
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


ngx_int_t
ngx_http_smarty_upstream_call(ngx_http_request_t *r,
    ngx_http_request_body_t *rb, off_t len, ngx_http_smarty_next_pt next)
{
    ngx_http_smarty_upstream_ctx_t  *u;

    u = ngx_pcalloc(r->pool, sizeof(ngx_http_smarty_upstream_ctx_t));
    if (u == NULL) {
        return NGX_ERROR;
    }

    u->rb = rb;
    u->len = len;
    u->next = next;

    ngx_http_set_ctx(r, u, ngx_http_smarty_upstream_module);

    return ngx_http_smarty_upstream_start(r, u);
}


/* the token first: the source may have to wait for one */

static ngx_int_t
ngx_http_smarty_upstream_start(ngx_http_request_t *r,
    ngx_http_smarty_upstream_ctx_t *u)
{
    u_char                           *p;
    size_t                            plen;
    ngx_int_t                         rc;
    ngx_str_t                         uri, args, *provider;
    ngx_http_request_t               *sr;
    ngx_http_smarty_ctx_t            *ctx;
    ngx_http_post_subrequest_t       *ps;
    ngx_http_smarty_token_source_t   *src;
    ngx_http_smarty_upstream_conf_t  *ucf;

    src = ngx_http_smarty_token_source(r);

    rc = src->ops->get(src, r, &u->token,
                       ngx_http_smarty_upstream_token_ready);

    if (rc == NGX_AGAIN) {
        return NGX_AGAIN;
    }

    if (rc != NGX_OK) {
        u->no_token = 1;
        return NGX_DECLINED;
    }

    ctx = ngx_http_smarty_ctx(r);
    ucf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_upstream_module);
    provider = ngx_http_smarty_token_provider(r);

    plen = ngx_strlen(ctx->method->path);

    uri.len = ucf->location.len + plen;
    uri.data = ngx_pnalloc(r->pool, uri.len);
    if (uri.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(uri.data, ucf->location.data, ucf->location.len);
    ngx_memcpy(p, ctx->method->path, plen);

    /* the gateway's credentials first, then what the allow-list lets by */

    args.len = sizeof("oauth_provider=&oauth_token=") - 1
               + provider->len + u->token.len
               + (ctx->args.len ? ctx->args.len + 1 : 0);

    args.data = ngx_pnalloc(r->pool, args.len);
    if (args.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(args.data, "oauth_provider=",
                   sizeof("oauth_provider=") - 1);
    p = ngx_cpymem(p, provider->data, provider->len);
    p = ngx_cpymem(p, "&oauth_token=", sizeof("&oauth_token=") - 1);
    p = ngx_cpymem(p, u->token.data, u->token.len);

    if (ctx->args.len) {
        *p++ = '&';
        p = ngx_cpymem(p, ctx->args.data, ctx->args.len);
    }

    args.len = p - args.data;

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_ERROR;
    }

    ps->handler = ngx_http_smarty_upstream_post;
    ps->data = u;

    if (ngx_http_subrequest(r, &uri, &args, &sr, ps,
                            NGX_HTTP_SUBREQUEST_IN_MEMORY)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    sr->method = NGX_HTTP_POST;
    sr->method_name = r->method_name;
    sr->request_body = r->request_body;
    sr->header_only = 0;

    if (u->rb) {
        sr->request_body = u->rb;
        sr->headers_in.content_length_n = u->len;
        sr->headers_in.chunked = 0;
    }

    if (ngx_http_smarty_strip_credentials(r, sr) != NGX_OK) {
        return NGX_ERROR;
    }

    u->sr = sr;
    u->done = 0;

    if (!u->started) {
        u->started = 1;
        u->start = ngx_current_msec;
        u->end = u->start;
    }

    r->write_event_handler = ngx_http_smarty_upstream_done;

    return NGX_AGAIN;
}


/* the source has a token now, or gave up waiting for one */

static void
ngx_http_smarty_upstream_token_ready(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_http_smarty_upstream_ctx_t  *u;

    u = ngx_http_get_module_ctx(r, ngx_http_smarty_upstream_module);

    rc = ngx_http_smarty_upstream_start(r, u);

    if (rc == NGX_AGAIN && u->sr == NULL) {
        /* still waiting */
        return;
    }

    if (rc != NGX_AGAIN) {
        /* no call: the result says why */
        if (rc == NGX_DECLINED) {
            u->no_token = 1;

        } else {
            u->failed = 1;
        }

        u->next(r);
    }
}


/*
 * The subrequest has ended (the parent's write event handler, posted by
 * ngx_http_finalize_request() of the subrequest).
 */

static void
ngx_http_smarty_upstream_done(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_http_smarty_upstream_ctx_t  *u;

    u = ngx_http_get_module_ctx(r, ngx_http_smarty_upstream_module);

    if (u == NULL || !u->done) {
        return;
    }

    r->write_event_handler = ngx_http_request_empty_handler;

    rc = ngx_http_smarty_upstream_retry(r, u);

    if (rc == NGX_AGAIN) {
        /* a second call, or a wait for the token it needs */
        return;
    }

    if (rc == NGX_DECLINED) {
        u->no_token = 1;

    } else if (rc == NGX_ERROR) {
        u->failed = 1;
    }

    u->next(r);
}


/*
 * The upstream refused the token: the source hears it and, once per
 * request, a second call goes with another token.  NGX_OK: no second call
 * (the outcome stands); NGX_AGAIN: it is under way; NGX_DECLINED: no
 * token for it; NGX_ERROR.
 */

static ngx_int_t
ngx_http_smarty_upstream_retry(ngx_http_request_t *r,
    ngx_http_smarty_upstream_ctx_t *u)
{
    ngx_int_t                        rc;
    ngx_http_smarty_ctx_t           *ctx;
    ngx_http_smarty_token_source_t  *src;

    ctx = ngx_http_smarty_ctx(r);

    if (u->rc != NGX_OK
        || (ctx->up_status != NGX_HTTP_UNAUTHORIZED
            && ctx->up_status != NGX_HTTP_FORBIDDEN))
    {
        return NGX_OK;
    }

    src = ngx_http_smarty_token_source(r);

    if (src->ops->rejected(src, r, &u->token) != NGX_OK || u->retried) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "smarty: the upstream answered %ui to the gateway's "
                  "token: the request is sent again with a new one",
                  ctx->up_status);

    u->retried = 1;
    u->sr = NULL;
    ctx->up_status = 0;
    ctx->up_body = NULL;
    ctx->up_len = 0;

    rc = ngx_http_smarty_upstream_start(r, u);

    if (rc == NGX_AGAIN && u->sr == NULL) {
        /* the source calls ngx_http_smarty_upstream_token_ready() */
        return NGX_AGAIN;
    }

    return rc;
}


/* the cache key depends on exactly these bytes */

ngx_int_t
ngx_http_smarty_upstream_args(ngx_http_request_t *r, ngx_str_t *out)
{
    u_char                           *p;
    size_t                            pos;
    ngx_str_t                        *allow;
    ngx_uint_t                        i;
    smarty_arg_t                      a;
    ngx_http_smarty_upstream_conf_t  *ucf;

    ucf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_upstream_module);

    out->len = 0;
    out->data = NULL;

    if (ucf->args == NULL || r->args.len == 0) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, r->args.len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;
    allow = ucf->args->elts;
    pos = 0;

    while (smarty_args_next((const char *) r->args.data, r->args.len, &pos,
                            &a))
    {
        if (smarty_args_credential(a.name, a.name_len)) {
            continue;
        }

        for (i = 0; i < ucf->args->nelts; i++) {
            if (smarty_args_name_is(a.name, a.name_len,
                                    (const char *) allow[i].data, 1))
            {
                break;
            }
        }

        if (i == ucf->args->nelts) {
            continue;
        }

        if (p != out->data) {
            *p++ = '&';
        }

        p = ngx_cpymem(p, a.pair, a.pair_len);
    }

    out->len = p - out->data;

    return NGX_OK;
}


/* the subrequest's headers: the client's, without its key */

static ngx_int_t
ngx_http_smarty_strip_credentials(ngx_http_request_t *r,
    ngx_http_request_t *sr)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *nh;

    if (ngx_list_init(&sr->headers_in.headers, r->pool, 16,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("Authorization") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Authorization",
                               sizeof("Authorization") - 1) == 0)
        {
            continue;
        }

        nh = ngx_list_push(&sr->headers_in.headers);
        if (nh == NULL) {
            return NGX_ERROR;
        }

        *nh = h[i];
    }

    sr->headers_in.authorization = NULL;

    return NGX_OK;
}


static ngx_int_t
ngx_http_smarty_upstream_post(ngx_http_request_t *sr, void *data,
    ngx_int_t rc)
{
    ngx_http_smarty_upstream_ctx_t  *u = data;

    ngx_buf_t              *b;
    ngx_http_smarty_ctx_t  *ctx;

    if (u->done) {
        return rc;
    }

    ctx = ngx_http_smarty_ctx(sr);

    u->done = 1;
    u->rc = rc;
    u->end = ngx_current_msec;

    if (sr->upstream && sr->upstream->headers_in.status_n) {
        ctx->up_status = sr->upstream->headers_in.status_n;
    }

    /* the answer, as the postpone filter gathered it in memory */

    if (rc == NGX_OK && sr->out && sr->out->buf) {
        b = sr->out->buf;

        if (b->last > b->pos) {
            ctx->up_body = sr->out;
            ctx->up_len = b->last - b->pos;
        }
    }

    if (rc == NGX_HTTP_CLIENT_CLOSED_REQUEST || sr->connection->error) {
        /* the client is gone: nothing to answer */
        return rc;
    }

    /*
     * Otherwise the gateway answers for the subrequest, whatever happened
     * upstream: no error page of nginx's may reach the client.  The parent
     * goes on in ngx_http_smarty_upstream_done().
     */

    return NGX_OK;
}


smarty_err_e
ngx_http_smarty_upstream_result(ngx_http_request_t *r, char *msg, size_t len)
{
    ngx_http_request_t              *sr;
    ngx_http_smarty_ctx_t           *ctx;
    ngx_http_smarty_upstream_ctx_t  *u;

    ctx = ngx_http_smarty_ctx(r);
    u = ngx_http_get_module_ctx(r, ngx_http_smarty_upstream_module);

    if (u == NULL || u->no_token) {
        return SMARTY_E_UPSTREAM_AUTH;
    }

    if (u->failed) {
        return SMARTY_E_INTERNAL;
    }

    sr = u->sr;

    if (sr->upstream == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "smarty: the \"smarty_upstream\" location did not "
                      "proxy the request (status %i)", u->rc);
        return SMARTY_E_INTERNAL;
    }

    if (u->rc == NGX_HTTP_GATEWAY_TIME_OUT) {
        return SMARTY_E_UPSTREAM_TIMEOUT;
    }

    if (u->rc == NGX_ERROR && ctx->up_status == NGX_HTTP_OK) {
        ngx_snprintf((u_char *) msg, len - 1,
                     "the recognition service's answer is larger than "
                     "subrequest_output_buffer_size%Z");
        return SMARTY_E_UPSTREAM_BAD_ANSWER;
    }

    if (u->rc != NGX_OK || ctx->up_status == 0) {
        return SMARTY_E_UPSTREAM_UNAVAILABLE;
    }

    if (ctx->up_status == NGX_HTTP_UNAUTHORIZED
        || ctx->up_status == NGX_HTTP_FORBIDDEN)
    {
        /* the source heard it (ngx_http_smarty_upstream_retry()) */
        return SMARTY_E_UPSTREAM_AUTH;
    }

    if (ctx->up_status >= NGX_HTTP_INTERNAL_SERVER_ERROR) {
        ngx_snprintf((u_char *) msg, len - 1,
                     "the recognition service failed (HTTP %ui)%Z",
                     ctx->up_status);
        return SMARTY_E_UPSTREAM_ERROR;
    }

    if (ctx->up_len == 0) {
        ngx_snprintf((u_char *) msg, len - 1,
                     "the recognition service answered HTTP %ui with no "
                     "body%Z", ctx->up_status);
        return SMARTY_E_UPSTREAM_BAD_ANSWER;
    }

    return SMARTY_OK;
}


ngx_msec_int_t
ngx_http_smarty_upstream_time(ngx_http_request_t *r)
{
    ngx_http_smarty_upstream_ctx_t  *u;

    u = ngx_http_get_module_ctx(r->main, ngx_http_smarty_upstream_module);

    if (u == NULL || !u->started) {
        return -1;
    }

    return (ngx_msec_int_t) ((u->done ? u->end : ngx_current_msec)
                             - u->start);
}


/* --- configuration -------------------------------------------------------- */


ngx_str_t *
ngx_http_smarty_upstream_conf_location(ngx_conf_t *cf)
{
    ngx_http_smarty_upstream_conf_t  *ucf;

    ucf = ngx_http_conf_get_module_loc_conf(cf,
                                            ngx_http_smarty_upstream_module);

    return &ucf->location;
}


/*
 * smarty_upstream_args name ...: the client's query parameters that go
 * upstream (none by default: the API defines none); never a credential.
 */

static char *
ngx_http_smarty_upstream_args_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_smarty_upstream_conf_t  *ucf = conf;

    ngx_str_t   *value, *name;
    ngx_uint_t   i;

    if (ucf->args != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    ucf->args = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                 sizeof(ngx_str_t));
    if (ucf->args == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (value[i].len == 0 || value[i].len > SMARTY_ARGS_NAME_MAX
            || smarty_args_credential((const char *) value[i].data,
                                      value[i].len))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"smarty_upstream_args\": \"%V\" cannot "
                               "be passed: the gateway sets oauth_token and "
                               "oauth_provider itself", &value[i]);
            return NGX_CONF_ERROR;
        }

        name = ngx_array_push(ucf->args);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        *name = value[i];
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_smarty_upstream_create_conf(ngx_conf_t *cf)
{
    ngx_http_smarty_upstream_conf_t  *ucf;

    ucf = ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_upstream_conf_t));
    if (ucf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     ucf->location = { 0, NULL };
     */

    ucf->args = NGX_CONF_UNSET_PTR;

    return ucf;
}


static char *
ngx_http_smarty_upstream_merge_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_smarty_upstream_conf_t  *prev = parent;
    ngx_http_smarty_upstream_conf_t  *conf = child;

    ngx_conf_merge_str_value(conf->location, prev->location, "");
    ngx_conf_merge_ptr_value(conf->args, prev->args, NULL);

    if (conf->location.len
        && (conf->location.data[0] != '/'
            || conf->location.data[conf->location.len - 1] != '/'))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_upstream\" must be a location prefix "
                           "that starts and ends with \"/\", not \"%V\"",
                           &conf->location);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
