/*
 * smarty-gateway: the request body: the module ngx_http_smarty_body_module
 * and its limits smarty_max_images, smarty_max_image_size,
 * smarty_max_meta_size (docs/reference.md).
 *
 * The multipart stream is parsed as nginx reads it, in a request body
 * filter: each buffer once, while the kernel's copy of it is still in the
 * CPU's caches, before nginx keeps it (in memory or in a temp file), never
 * gathered into one copy.  Every image is hashed (SHA-256) as it streams
 * by, its digest hex-encoded once, its byte range remembered; "meta" is
 * kept for validation.  A limit stops the parse as soon as it is crossed;
 * what stopped it is told once the whole body is read.
 */

#include "ngx_http_smarty_body.h"
#include "ngx_http_smarty_digest.h"
#include "smarty_cache.h"
#include "smarty_multipart.h"


#define SMARTY_BODY_STOP     -100
#define SMARTY_FILE_CHUNK    65536
#define SMARTY_BODY_MP_KEEP  16         /* parsers (21 KB each) kept */
#define SMARTY_BODY_BLOCK    16384      /* parsed at a time */


typedef struct {
    ngx_uint_t                 max_images;
    size_t                     max_image_size;
    size_t                     max_meta_size;
} ngx_http_smarty_body_conf_t;


typedef struct {
    ngx_http_smarty_ctx_t     *ctx;
    ngx_http_smarty_body_conf_t  *conf;
    smarty_mp_t               *mp;
    int                        rc;         /* the parse so far */
    EVP_MD_CTX                *md;
    ngx_http_smarty_part_t    *cur;        /* image part being read */
    u_char                    *meta;
    size_t                     meta_len;
    size_t                     meta_size;
    unsigned                   in_meta:1;
    unsigned                   seen_meta:1;
    smarty_err_e               err;
    char                       msg[256];
    u_char                     boundary[SMARTY_MP_BOUNDARY_MAX + 1];
    size_t                     boundary_len;
} ngx_http_smarty_body_t;


static ngx_int_t ngx_http_smarty_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_smarty_body_feed(ngx_http_request_t *r,
    ngx_http_smarty_body_t *b, ngx_buf_t *buf);
static ngx_int_t ngx_http_smarty_body_refuse(ngx_http_smarty_ctx_t *ctx,
    ngx_http_smarty_body_t *b);
static smarty_mp_t *ngx_http_smarty_body_mp_get(void);
static void ngx_http_smarty_body_mp_put(smarty_mp_t *mp);

static void ngx_http_smarty_body_cleanup(void *data);
static int ngx_http_smarty_part_begin(void *ud, smarty_mp_part_t *part);
static int ngx_http_smarty_part_data(void *ud, smarty_mp_part_t *part,
    const unsigned char *p, size_t len);
static int ngx_http_smarty_part_end(void *ud, smarty_mp_part_t *part);
static int ngx_http_smarty_body_fail(ngx_http_smarty_body_t *b,
    smarty_err_e e, const char *fmt, ...);
static ngx_int_t ngx_http_smarty_body_range(ngx_http_request_t *r,
    uint64_t from, uint64_t to, ngx_chain_t ***ll);
static ngx_int_t ngx_http_smarty_body_mem(ngx_http_request_t *r, u_char *p,
    size_t len, ngx_chain_t ***ll);
static char *ngx_http_smarty_max_images(ngx_conf_t *cf, void *post,
    void *data);
static ngx_int_t ngx_http_smarty_body_init(ngx_conf_t *cf);
static void *ngx_http_smarty_body_create_conf(ngx_conf_t *cf);
static char *ngx_http_smarty_body_merge_conf(ngx_conf_t *cf, void *parent,
    void *child);


static ngx_http_request_body_filter_pt   ngx_http_next_request_body_filter;

/* a worker's multipart parsers, kept for the next requests */
static smarty_mp_t  *ngx_http_smarty_body_mps[SMARTY_BODY_MP_KEEP];
static ngx_uint_t    ngx_http_smarty_body_nmps;


static const smarty_mp_callbacks_t  ngx_http_smarty_mp_cb = {
    ngx_http_smarty_part_begin,
    ngx_http_smarty_part_data,
    ngx_http_smarty_part_end
};


static ngx_conf_post_handler_pt  ngx_http_smarty_max_images_p =
    ngx_http_smarty_max_images;


static ngx_command_t  ngx_http_smarty_body_commands[] = {

    { ngx_string("smarty_max_images"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_body_conf_t, max_images),
      &ngx_http_smarty_max_images_p },

    { ngx_string("smarty_max_image_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_body_conf_t, max_image_size),
      NULL },

    { ngx_string("smarty_max_meta_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_smarty_body_conf_t, max_meta_size),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_smarty_body_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_smarty_body_init,             /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_smarty_body_create_conf,      /* create location configuration */
    ngx_http_smarty_body_merge_conf        /* merge location configuration */
};


ngx_module_t  ngx_http_smarty_body_module = {
    NGX_MODULE_V1,
    &ngx_http_smarty_body_module_ctx,      /* module context */
    ngx_http_smarty_body_commands,         /* module directives */
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
ngx_http_smarty_body_begin(ngx_http_request_t *r)
{
    int                      rc;
    char                     boundary[SMARTY_MP_BOUNDARY_MAX + 1];
    size_t                   blen;
    ngx_table_elt_t         *ct;
    ngx_pool_cleanup_t      *cln;
    ngx_http_smarty_ctx_t   *ctx;
    ngx_http_smarty_body_t  *b;

    ctx = ngx_http_smarty_ctx(r);
    ct = r->headers_in.content_type;

    if (ct == NULL) {
        ctx->error.err = SMARTY_E_BAD_CONTENT_TYPE;
        return NGX_DECLINED;
    }

    rc = smarty_mp_boundary((const char *) ct->value.data, ct->value.len,
                            boundary, &blen);

    if (rc == SMARTY_MP_ERR_TYPE) {
        ctx->error.err = SMARTY_E_BAD_CONTENT_TYPE;
        return NGX_DECLINED;
    }

    if (rc != 0) {
        ctx->error.err = SMARTY_E_BAD_BOUNDARY;
        return NGX_DECLINED;
    }

    b = ngx_pcalloc(r->pool, sizeof(ngx_http_smarty_body_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (b == NULL || cln == NULL) {
        return NGX_ERROR;
    }

    b->ctx = ctx;
    b->conf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_body_module);

    if (ngx_array_init(&ctx->parts, r->pool, 4,
                       sizeof(ngx_http_smarty_part_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the cleanup gives both back */

    cln->handler = ngx_http_smarty_body_cleanup;
    cln->data = b;

    b->mp = ngx_http_smarty_body_mp_get();
    b->md = ngx_http_smarty_digest_get();

    if (b->mp == NULL || b->md == NULL || ngx_http_smarty_sha256() == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(b->boundary, boundary, blen);
    b->boundary_len = blen;
    b->rc = SMARTY_MP_OK;

    smarty_mp_init(b->mp, boundary, blen, &ngx_http_smarty_mp_cb, b);

    ngx_http_set_ctx(r, b, ngx_http_smarty_body_module);

    return NGX_OK;
}


/*
 * What nginx reads of the body, as it reads it (the data the length or
 * chunked filter passes on, before the buffers are kept): fed to the
 * request's multipart parser, if it has one.
 */

static ngx_int_t
ngx_http_smarty_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t             *cl;
    ngx_http_smarty_body_t  *b;

    b = ngx_http_get_module_ctx(r, ngx_http_smarty_body_module);

    for (cl = in; b != NULL && b->rc == SMARTY_MP_OK && cl; cl = cl->next) {
        if (ngx_http_smarty_body_feed(r, b, cl->buf) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return ngx_http_next_request_body_filter(r, in);
}


/* one buffer of the body: memory, or (never seen so far) a file's range */

static ngx_int_t
ngx_http_smarty_body_feed(ngx_http_request_t *r, ngx_http_smarty_body_t *b,
    ngx_buf_t *buf)
{
    u_char   *chunk, *p, *q, *pf, *next, *end;
    size_t    n;
    off_t     off;
    ssize_t   got;

    if (ngx_buf_in_memory(buf)) {

        /*
         * A read may bring megabytes, beyond the CPU's caches by the time
         * they are parsed: block by block, the next one is fetched from
         * memory while this one is hashed, so that the boundary's search
         * (memchr) finds it in the cache, as the hash does.
         */

        p = buf->pos;
        end = buf->last;

        while (p < end && b->rc == SMARTY_MP_OK) {
            next = p + ngx_min((size_t) (end - p), SMARTY_BODY_BLOCK);
            q = next + ngx_min((size_t) (end - next), SMARTY_BODY_BLOCK);

            for (pf = next; pf < q; pf += 64) {
                __builtin_prefetch(pf, 0, 3);        /* a cache line */
            }

            b->rc = smarty_mp_feed(b->mp, p, next - p);
            p = next;
        }

        return NGX_OK;
    }

    if (!buf->in_file) {
        return NGX_OK;
    }

    chunk = ngx_palloc(r->pool, SMARTY_FILE_CHUNK);
    if (chunk == NULL) {
        return NGX_ERROR;
    }

    for (off = buf->file_pos; off < buf->file_last && b->rc == SMARTY_MP_OK;
         off += got)
    {
        n = ngx_min((off_t) SMARTY_FILE_CHUNK, buf->file_last - off);

        got = ngx_read_file(buf->file, chunk, n, off);
        if (got <= 0) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "smarty: reading the body's temp file failed");
            ngx_pfree(r->pool, chunk);
            return NGX_ERROR;
        }

        b->rc = smarty_mp_feed(b->mp, chunk, got);
    }

    ngx_pfree(r->pool, chunk);

    return NGX_OK;
}


/*
 * The whole body is read (and parsed as it came): the end of the parse,
 * then meta validated.  NGX_OK, NGX_DECLINED with the context's error
 * set, or NGX_ERROR.
 */

ngx_int_t
ngx_http_smarty_body_parse(ngx_http_request_t *r)
{
    int                      rc;
    size_t                   i;
    smarty_part_name_t      *names;
    smarty_meta_error_t      merr;
    ngx_http_smarty_ctx_t   *ctx;
    ngx_http_smarty_body_t  *b;
    ngx_http_smarty_part_t  *parts;

    ctx = ngx_http_smarty_ctx(r);
    b = ngx_http_get_module_ctx(r, ngx_http_smarty_body_module);

    if (r->request_body == NULL) {
        ctx->error.err = SMARTY_E_EMPTY_BODY;
        return NGX_DECLINED;
    }

    rc = b->rc;

    if (rc == SMARTY_MP_OK) {
        rc = smarty_mp_finish(b->mp);
    }

    switch (rc) {

    case SMARTY_MP_DONE:
        break;

    case SMARTY_BODY_STOP:
        if (b->err == SMARTY_E_INTERNAL) {
            return NGX_ERROR;
        }

        return ngx_http_smarty_body_refuse(ctx, b);

    case SMARTY_MP_ERR_HEADERS:
    case SMARTY_MP_ERR_NAME_LONG:
        ngx_http_smarty_body_fail(b, SMARTY_E_BAD_PART_HEADERS, "%s",
                                  smarty_mp_strerror(rc));
        return ngx_http_smarty_body_refuse(ctx, b);

    case SMARTY_MP_ERR_BOUNDARY:
        ctx->error.err = SMARTY_E_BAD_BOUNDARY;
        return NGX_DECLINED;

    default:
        ngx_http_smarty_body_fail(b, SMARTY_E_BAD_MULTIPART, "%s",
                                  smarty_mp_strerror(rc));
        return ngx_http_smarty_body_refuse(ctx, b);
    }

    if (!b->seen_meta) {
        ctx->error.err = SMARTY_E_MISSING_META;
        return NGX_DECLINED;
    }

    ctx->meta.data = b->meta;
    ctx->meta.len = b->meta_len;

    parts = ctx->parts.elts;

    names = ngx_palloc(r->pool,
                       (ctx->parts.nelts + 1) * sizeof(smarty_part_name_t));
    if (names == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < ctx->parts.nelts; i++) {
        names[i].name = (const char *) parts[i].name.data;
        names[i].len = parts[i].name.len;
    }

    if (smarty_meta_validate(ctx->method, (const char *) b->meta,
                             b->meta_len, names, ctx->parts.nelts,
                             b->conf->max_images, &ctx->m, &merr)
        != 0)
    {
        ngx_http_smarty_body_fail(b, merr.code, "%s", merr.message);
        return ngx_http_smarty_body_refuse(ctx, b);
    }

    ctx->m_valid = 1;

    return NGX_OK;
}


/* the parse stopped: its error and sentence become the request's */

static ngx_int_t
ngx_http_smarty_body_refuse(ngx_http_smarty_ctx_t *ctx,
    ngx_http_smarty_body_t *b)
{
    ctx->error.err = b->err;
    ctx->error.msg = b->msg[0] ? b->msg : NULL;

    return NGX_DECLINED;
}


static void
ngx_http_smarty_body_cleanup(void *data)
{
    ngx_http_smarty_body_t  *b = data;

    if (b->md) {
        ngx_http_smarty_digest_put(b->md);
        b->md = NULL;
    }

    if (b->mp) {
        ngx_http_smarty_body_mp_put(b->mp);
        b->mp = NULL;
    }

    if (b->ctx->m_valid) {
        smarty_meta_free(&b->ctx->m);
        b->ctx->m_valid = 0;
    }
}


static int
ngx_http_smarty_part_begin(void *ud, smarty_mp_part_t *part)
{
    ngx_http_smarty_body_t  *b = ud;

    ngx_uint_t               i;
    ngx_http_smarty_ctx_t   *ctx;
    ngx_http_smarty_part_t  *p, *parts;

    ctx = b->ctx;

    if (part->name_len == 4 && ngx_strncmp(part->name, "meta", 4) == 0) {
        if (b->seen_meta) {
            return ngx_http_smarty_body_fail(b, SMARTY_E_DUPLICATE_PART,
                                             "the body has two \"meta\" "
                                             "parts");
        }

        b->seen_meta = 1;
        b->in_meta = 1;
        return SMARTY_MP_OK;
    }

    parts = ctx->parts.elts;

    for (i = 0; i < ctx->parts.nelts; i++) {
        if (parts[i].name.len == part->name_len
            && ngx_strncmp(parts[i].name.data, part->name, part->name_len)
               == 0)
        {
            return ngx_http_smarty_body_fail(b, SMARTY_E_DUPLICATE_PART,
                                             "the body has two parts named "
                                             "\"%*s\"",
                                             ngx_min(part->name_len, 64),
                                             part->name);
        }
    }

    if (ctx->parts.nelts >= b->conf->max_images) {
        return ngx_http_smarty_body_fail(b, SMARTY_E_TOO_MANY_IMAGES,
                                         "more than %ui images in one "
                                         "request", b->conf->max_images);
    }

    p = ngx_array_push(&ctx->parts);
    if (p == NULL) {
        return ngx_http_smarty_body_fail(b, SMARTY_E_INTERNAL, NULL);
    }

    ngx_memzero(p, sizeof(ngx_http_smarty_part_t));

    /* until the part ends: the hex of a digest of zeroes, as before */
    ngx_memset(p->sha256_hex, '0', 2 * SMARTY_SHA256_LEN);

    p->name.data = ngx_pnalloc(b->ctx->request->pool, part->name_len + 1);
    if (p->name.data == NULL) {
        return ngx_http_smarty_body_fail(b, SMARTY_E_INTERNAL, NULL);
    }

    ngx_memcpy(p->name.data, part->name, part->name_len);
    p->name.data[part->name_len] = '\0';
    p->name.len = part->name_len;
    p->start = part->start;
    p->data_start = part->data_start;

    if (EVP_DigestInit_ex(b->md, ngx_http_smarty_sha256(), NULL) != 1) {
        return ngx_http_smarty_body_fail(b, SMARTY_E_INTERNAL, NULL);
    }

    b->cur = p;

    return SMARTY_MP_OK;
}


static int
ngx_http_smarty_part_data(void *ud, smarty_mp_part_t *part,
    const unsigned char *data, size_t len)
{
    ngx_http_smarty_body_t  *b = ud;

    size_t   size;
    u_char  *m;

    if (b->in_meta) {
        if (b->meta_len + len > b->conf->max_meta_size) {
            return ngx_http_smarty_body_fail(b, SMARTY_E_META_TOO_LARGE,
                                             "\"meta\" is larger than %uz "
                                             "bytes",
                                             b->conf->max_meta_size);
        }

        if (b->meta_len + len > b->meta_size) {
            size = ngx_max(b->meta_size * 2, b->meta_len + len);
            size = ngx_max(size, 1024);
            size = ngx_min(size, b->conf->max_meta_size);

            m = ngx_pnalloc(b->ctx->request->pool, size);
            if (m == NULL) {
                return ngx_http_smarty_body_fail(b, SMARTY_E_INTERNAL,
                                                 NULL);
            }

            if (b->meta_len) {
                ngx_memcpy(m, b->meta, b->meta_len);
            }

            b->meta = m;
            b->meta_size = size;
        }

        ngx_memcpy(b->meta + b->meta_len, data, len);
        b->meta_len += len;

        return SMARTY_MP_OK;
    }

    if (EVP_DigestUpdate(b->md, data, len) != 1) {
        return ngx_http_smarty_body_fail(b, SMARTY_E_INTERNAL, NULL);
    }

    b->cur->data_end += len;       /* counts bytes until part_end */

    if (b->cur->data_end > b->conf->max_image_size) {
        return ngx_http_smarty_body_fail(b, SMARTY_E_IMAGE_TOO_LARGE,
                                         "image \"%*s\" is larger than "
                                         "%uz bytes",
                                         ngx_min(part->name_len, 64),
                                         part->name,
                                         b->conf->max_image_size);
    }

    return SMARTY_MP_OK;
}


static int
ngx_http_smarty_part_end(void *ud, smarty_mp_part_t *part)
{
    ngx_http_smarty_body_t  *b = ud;

    unsigned int  mdlen;

    if (b->in_meta) {
        b->in_meta = 0;
        return SMARTY_MP_OK;
    }

    if (EVP_DigestFinal_ex(b->md, b->cur->sha256, &mdlen) != 1) {
        return ngx_http_smarty_body_fail(b, SMARTY_E_INTERNAL, NULL);
    }

    ngx_hex_dump(b->cur->sha256_hex, b->cur->sha256, SMARTY_SHA256_LEN);

    b->cur->data_end = part->data_end;
    b->cur = NULL;

    return SMARTY_MP_OK;
}


static int
ngx_http_smarty_body_fail(ngx_http_smarty_body_t *b, smarty_err_e e,
    const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    b->err = e;

    if (fmt) {
        va_start(args, fmt);
        p = ngx_vslprintf((u_char *) b->msg,
                          (u_char *) b->msg + sizeof(b->msg) - 1, fmt, args);
        va_end(args);
        *p = '\0';

    } else {
        b->msg[0] = '\0';
    }

    return SMARTY_BODY_STOP;
}


/*
 * A body for some of the images only (the others were cached): a new meta
 * part, then each kept part's own header and data bytes, referenced where
 * they lie (memory or temp file), not copied.
 */

static ngx_int_t ngx_http_smarty_body_range(ngx_http_request_t *r,
    uint64_t from, uint64_t to, ngx_chain_t ***ll);
static ngx_int_t ngx_http_smarty_body_mem(ngx_http_request_t *r, u_char *p,
    size_t len, ngx_chain_t ***ll);


ngx_int_t
ngx_http_smarty_body_subset(ngx_http_request_t *r, ngx_uint_t *idx,
    ngx_uint_t n, ngx_http_request_body_t **rbp, off_t *lenp)
{
    char                     *json;
    u_char                   *p, *head, *meta;
    off_t                     len;
    size_t                    meta_len;
    ngx_uint_t                i;
    const char              **keep;
    ngx_chain_t              *out, **ll;
    ngx_http_smarty_ctx_t    *ctx;
    ngx_http_smarty_body_t   *b;
    ngx_http_smarty_part_t   *parts, *part;
    ngx_http_request_body_t  *rb;

    ctx = ngx_http_smarty_ctx(r);
    b = ngx_http_get_module_ctx(r, ngx_http_smarty_body_module);
    parts = ctx->parts.elts;

    /* meta naming only the images kept */

    keep = ngx_palloc(r->pool, n * sizeof(char *));
    if (keep == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        keep[i] = ctx->m.images[idx[i]].name;
    }

    json = smarty_cache_meta_subset((const char *) ctx->meta.data,
                                    ctx->meta.len, keep, n, &meta_len);
    if (json == NULL) {
        return NGX_ERROR;
    }

    meta = ngx_pnalloc(r->pool, meta_len);
    if (meta == NULL) {
        free(json);
        return NGX_ERROR;
    }

    ngx_memcpy(meta, json, meta_len);
    free(json);
    out = NULL;
    ll = &out;
    len = 0;

    head = ngx_pnalloc(r->pool, 2 * b->boundary_len + 160);
    if (head == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(head, "--%*s\r\nContent-Disposition: form-data; "
                    "name=\"meta\"\r\nContent-Type: application/json"
                    "\r\n\r\n", b->boundary_len, b->boundary);

    if (ngx_http_smarty_body_mem(r, head, p - head, &ll) != NGX_OK
        || ngx_http_smarty_body_mem(r, meta, meta_len, &ll) != NGX_OK)
    {
        return NGX_ERROR;
    }

    len += (p - head) + meta_len;

    for (i = 0; i < n; i++) {
        part = &parts[ctx->m.images[idx[i]].part];

        p = ngx_pnalloc(r->pool, b->boundary_len + 6);
        if (p == NULL) {
            return NGX_ERROR;
        }

        /* CRLF ends the previous part, then the delimiter line */
        head = p;
        p = ngx_sprintf(p, "\r\n--%*s\r\n", b->boundary_len,
                        b->boundary);

        if (ngx_http_smarty_body_mem(r, head, p - head, &ll) != NGX_OK
            || ngx_http_smarty_body_range(r, part->start, part->data_end, &ll)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        len += (p - head) + (part->data_end - part->start);
    }

    p = ngx_pnalloc(r->pool, b->boundary_len + 8);
    if (p == NULL) {
        return NGX_ERROR;
    }

    head = p;
    p = ngx_sprintf(p, "\r\n--%*s--\r\n", b->boundary_len,
                    b->boundary);

    if (ngx_http_smarty_body_mem(r, head, p - head, &ll) != NGX_OK) {
        return NGX_ERROR;
    }

    len += p - head;

    rb = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    if (rb == NULL) {
        return NGX_ERROR;
    }

    rb->bufs = out;
    rb->rest = 0;

    *rbp = rb;
    *lenp = len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_smarty_body_mem(ngx_http_request_t *r, u_char *p, size_t len,
    ngx_chain_t ***ll)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    b = ngx_calloc_buf(r->pool);
    cl = ngx_alloc_chain_link(r->pool);

    if (b == NULL || cl == NULL) {
        return NGX_ERROR;
    }

    b->pos = p;
    b->last = p + len;
    b->memory = 1;

    cl->buf = b;
    cl->next = NULL;
    **ll = cl;
    *ll = &cl->next;

    return NGX_OK;
}


/* bytes [from, to) of the client's body, as buffers over where they lie */

static ngx_int_t
ngx_http_smarty_body_range(ngx_http_request_t *r, uint64_t from, uint64_t to,
    ngx_chain_t ***ll)
{
    off_t         size;
    uint64_t      off, start, end;
    ngx_buf_t    *b, *nb;
    ngx_chain_t  *cl, *ncl;

    off = 0;

    for (cl = r->request_body->bufs; cl && off < to; cl = cl->next) {
        b = cl->buf;
        size = ngx_buf_size(b);

        if (size == 0) {
            continue;
        }

        start = ngx_max(from, off);
        end = ngx_min(to, off + size);

        if (start < end) {
            nb = ngx_calloc_buf(r->pool);
            ncl = ngx_alloc_chain_link(r->pool);

            if (nb == NULL || ncl == NULL) {
                return NGX_ERROR;
            }

            if (ngx_buf_in_memory(b)) {
                nb->pos = b->pos + (start - off);
                nb->last = b->pos + (end - off);
                nb->memory = 1;

            } else {
                nb->file = b->file;
                nb->file_pos = b->file_pos + (start - off);
                nb->file_last = b->file_pos + (end - off);
                nb->in_file = 1;
            }

            ncl->buf = nb;
            ncl->next = NULL;
            **ll = ncl;
            *ll = &ncl->next;
        }

        off += size;
    }

    return NGX_OK;
}


/* --- a worker's parsers --------------------------------------------------- */


static smarty_mp_t *
ngx_http_smarty_body_mp_get(void)
{
    if (ngx_http_smarty_body_nmps > 0) {
        return ngx_http_smarty_body_mps[--ngx_http_smarty_body_nmps];
    }

    return ngx_alloc(sizeof(smarty_mp_t), ngx_cycle->log);
}


static void
ngx_http_smarty_body_mp_put(smarty_mp_t *mp)
{
    if (ngx_http_smarty_body_nmps < SMARTY_BODY_MP_KEEP) {
        ngx_http_smarty_body_mps[ngx_http_smarty_body_nmps++] = mp;
        return;
    }

    ngx_free(mp);
}


/* --- configuration -------------------------------------------------------- */


static ngx_int_t
ngx_http_smarty_body_init(ngx_conf_t *cf)
{
    ngx_http_next_request_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = ngx_http_smarty_body_filter;

    return NGX_OK;
}


static char *
ngx_http_smarty_max_images(ngx_conf_t *cf, void *post, void *data)
{
    ngx_uint_t  *np = data;

    if (*np < 1 || *np > 10000) {
        return "must be between 1 and 10000";
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_smarty_body_create_conf(ngx_conf_t *cf)
{
    ngx_http_smarty_body_conf_t  *bcf;

    bcf = ngx_palloc(cf->pool, sizeof(ngx_http_smarty_body_conf_t));
    if (bcf == NULL) {
        return NULL;
    }

    bcf->max_images = NGX_CONF_UNSET_UINT;
    bcf->max_image_size = NGX_CONF_UNSET_SIZE;
    bcf->max_meta_size = NGX_CONF_UNSET_SIZE;

    return bcf;
}


static char *
ngx_http_smarty_body_merge_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_smarty_body_conf_t  *prev = parent;
    ngx_http_smarty_body_conf_t  *conf = child;

    ngx_conf_merge_uint_value(conf->max_images, prev->max_images, 100);
    ngx_conf_merge_size_value(conf->max_image_size, prev->max_image_size,
                              4 * 1024 * 1024);
    ngx_conf_merge_size_value(conf->max_meta_size, prev->max_meta_size,
                              64 * 1024);

    if (conf->max_image_size == 0 || conf->max_meta_size == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"smarty_max_image_size\" and "
                           "\"smarty_max_meta_size\" must not be zero");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
