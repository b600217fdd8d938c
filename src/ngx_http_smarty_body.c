/*
 * smarty-gateway: the request body.
 *
 * nginx reads the body into memory buffers or, past client_body_buffer_size,
 * a temp file.  The multipart stream is parsed where it lies: memory
 * buffers directly, file buffers through one small read buffer, so the body
 * is never gathered into one copy.  Every image part is hashed (SHA-256) as
 * it streams by, its byte range in the body is remembered, and the "meta"
 * part (bounded by smarty_max_meta_size) is kept for validation.
 *
 * Limits (images per request, bytes per image, meta size) stop the parse as
 * soon as they are crossed.
 */

#include "ngx_http_smarty_module.h"


#define SMARTY_BODY_STOP     -100
#define SMARTY_FILE_CHUNK    65536


static int ngx_http_smarty_part_begin(void *ud, smarty_mp_part_t *part);
static int ngx_http_smarty_part_data(void *ud, smarty_mp_part_t *part,
    const unsigned char *p, size_t len);
static int ngx_http_smarty_part_end(void *ud, smarty_mp_part_t *part);
static int ngx_http_smarty_body_fail(ngx_http_smarty_ctx_t *ctx,
    smarty_err_e e, const char *fmt, ...);


static const smarty_mp_callbacks_t  ngx_http_smarty_mp_cb = {
    ngx_http_smarty_part_begin,
    ngx_http_smarty_part_data,
    ngx_http_smarty_part_end
};


/* what the parse callbacks need: the request's conf and ctx */

typedef struct {
    ngx_http_request_t          *r;
    ngx_http_smarty_loc_conf_t  *slcf;
    ngx_http_smarty_ctx_t       *ctx;
} ngx_http_smarty_body_ud_t;


/*
 * Before the body is read: the Content-Type must be multipart/form-data
 * with a well-formed boundary.
 */

ngx_int_t
ngx_http_smarty_body_begin(ngx_http_request_t *r, ngx_http_smarty_ctx_t *ctx)
{
    int               rc;
    char              boundary[SMARTY_MP_BOUNDARY_MAX + 1];
    size_t            blen;
    ngx_table_elt_t  *ct;

    ct = r->headers_in.content_type;

    if (ct == NULL) {
        ctx->body_err = SMARTY_E_BAD_CONTENT_TYPE;
        return NGX_DECLINED;
    }

    rc = smarty_mp_boundary((const char *) ct->value.data, ct->value.len,
                            boundary, &blen);

    if (rc == SMARTY_MP_ERR_TYPE) {
        ctx->body_err = SMARTY_E_BAD_CONTENT_TYPE;
        return NGX_DECLINED;
    }

    if (rc != 0) {
        ctx->body_err = SMARTY_E_BAD_BOUNDARY;
        return NGX_DECLINED;
    }

    ctx->mp = ngx_palloc(r->pool, sizeof(smarty_mp_t));
    if (ctx->mp == NULL) {
        return NGX_ERROR;
    }

    if (ngx_array_init(&ctx->parts, r->pool, 4,
                       sizeof(ngx_http_smarty_part_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->md = EVP_MD_CTX_new();
    if (ctx->md == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ctx->boundary, boundary, blen);
    ctx->boundary_len = blen;

    /* the callbacks' user data is set in ngx_http_smarty_body_parse() */
    smarty_mp_init(ctx->mp, boundary, blen, &ngx_http_smarty_mp_cb, NULL);

    return NGX_OK;
}


/*
 * The whole body is read: parse it, then validate meta.  Returns NGX_OK,
 * NGX_DECLINED with ctx->body_err set, or NGX_ERROR.
 */

ngx_int_t
ngx_http_smarty_body_parse(ngx_http_request_t *r,
    ngx_http_smarty_loc_conf_t *slcf, ngx_http_smarty_ctx_t *ctx)
{
    int                         rc;
    u_char                     *chunk;
    size_t                      n, i;
    off_t                       off;
    ssize_t                     got;
    ngx_buf_t                  *b;
    ngx_chain_t                *cl;
    smarty_part_name_t         *names;
    smarty_meta_error_t         merr;
    ngx_http_smarty_part_t     *parts;
    ngx_http_smarty_body_ud_t   ud;

    ud.r = r;
    ud.slcf = slcf;
    ud.ctx = ctx;
    ctx->mp->ud = &ud;

    chunk = NULL;
    rc = SMARTY_MP_OK;

    for (cl = r->request_body->bufs; cl && rc == SMARTY_MP_OK; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_in_memory(b)) {
            rc = smarty_mp_feed(ctx->mp, b->pos, b->last - b->pos);
            continue;
        }

        if (!b->in_file) {
            continue;
        }

        if (chunk == NULL) {
            chunk = ngx_palloc(r->pool, SMARTY_FILE_CHUNK);
            if (chunk == NULL) {
                return NGX_ERROR;
            }
        }

        for (off = b->file_pos; off < b->file_last && rc == SMARTY_MP_OK;
             off += got)
        {
            n = ngx_min((off_t) SMARTY_FILE_CHUNK, b->file_last - off);

            got = ngx_read_file(b->file, chunk, n, off);
            if (got <= 0) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "smarty: reading the body's temp file failed");
                return NGX_ERROR;
            }

            rc = smarty_mp_feed(ctx->mp, chunk, got);
        }
    }

    if (chunk) {
        ngx_pfree(r->pool, chunk);
    }

    if (rc == SMARTY_MP_OK) {
        rc = smarty_mp_finish(ctx->mp);
    }

    ctx->mp->ud = NULL;

    switch (rc) {

    case SMARTY_MP_DONE:
        break;

    case SMARTY_BODY_STOP:
        return ctx->body_err == SMARTY_E_INTERNAL ? NGX_ERROR : NGX_DECLINED;

    case SMARTY_MP_ERR_HEADERS:
    case SMARTY_MP_ERR_NAME_LONG:
        ngx_http_smarty_body_fail(ctx, SMARTY_E_BAD_PART_HEADERS, "%s",
                                  smarty_mp_strerror(rc));
        return NGX_DECLINED;

    case SMARTY_MP_ERR_BOUNDARY:
        ctx->body_err = SMARTY_E_BAD_BOUNDARY;
        return NGX_DECLINED;

    default:
        ngx_http_smarty_body_fail(ctx, SMARTY_E_BAD_MULTIPART, "%s",
                                  smarty_mp_strerror(rc));
        return NGX_DECLINED;
    }

    if (!ctx->seen_meta) {
        ctx->body_err = SMARTY_E_MISSING_META;
        return NGX_DECLINED;
    }

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

    if (smarty_meta_validate(ctx->method, (const char *) ctx->meta,
                             ctx->meta_len, names, ctx->parts.nelts,
                             slcf->max_images, &ctx->m, &merr)
        != 0)
    {
        ctx->body_err = merr.code;
        ngx_cpystrn((u_char *) ctx->body_msg, (u_char *) merr.message,
                    sizeof(ctx->body_msg));
        return NGX_DECLINED;
    }

    ctx->m_valid = 1;

    return NGX_OK;
}


static int
ngx_http_smarty_part_begin(void *ud, smarty_mp_part_t *part)
{
    ngx_http_smarty_body_ud_t  *bud = ud;

    ngx_uint_t               i;
    ngx_http_smarty_ctx_t   *ctx;
    ngx_http_smarty_part_t  *p, *parts;

    ctx = bud->ctx;

    if (part->name_len == 4 && ngx_strncmp(part->name, "meta", 4) == 0) {
        if (ctx->seen_meta) {
            return ngx_http_smarty_body_fail(ctx, SMARTY_E_DUPLICATE_PART,
                                             "the body has two \"meta\" "
                                             "parts");
        }

        ctx->seen_meta = 1;
        ctx->in_meta = 1;
        return SMARTY_MP_OK;
    }

    parts = ctx->parts.elts;

    for (i = 0; i < ctx->parts.nelts; i++) {
        if (parts[i].name.len == part->name_len
            && ngx_strncmp(parts[i].name.data, part->name, part->name_len)
               == 0)
        {
            return ngx_http_smarty_body_fail(ctx, SMARTY_E_DUPLICATE_PART,
                                             "the body has two parts named "
                                             "\"%*s\"",
                                             ngx_min(part->name_len, 64),
                                             part->name);
        }
    }

    if (ctx->parts.nelts >= bud->slcf->max_images) {
        return ngx_http_smarty_body_fail(ctx, SMARTY_E_TOO_MANY_IMAGES,
                                         "more than %ui images in one "
                                         "request", bud->slcf->max_images);
    }

    p = ngx_array_push(&ctx->parts);
    if (p == NULL) {
        return ngx_http_smarty_body_fail(ctx, SMARTY_E_INTERNAL, NULL);
    }

    ngx_memzero(p, sizeof(ngx_http_smarty_part_t));

    p->name.data = ngx_pnalloc(bud->r->pool, part->name_len + 1);
    if (p->name.data == NULL) {
        return ngx_http_smarty_body_fail(ctx, SMARTY_E_INTERNAL, NULL);
    }

    ngx_memcpy(p->name.data, part->name, part->name_len);
    p->name.data[part->name_len] = '\0';
    p->name.len = part->name_len;
    p->start = part->start;
    p->data_start = part->data_start;

    if (EVP_DigestInit_ex(ctx->md, EVP_sha256(), NULL) != 1) {
        return ngx_http_smarty_body_fail(ctx, SMARTY_E_INTERNAL, NULL);
    }

    ctx->cur = p;

    return SMARTY_MP_OK;
}


static int
ngx_http_smarty_part_data(void *ud, smarty_mp_part_t *part,
    const unsigned char *data, size_t len)
{
    ngx_http_smarty_body_ud_t  *bud = ud;

    size_t                  size;
    u_char                 *m;
    ngx_http_smarty_ctx_t  *ctx;

    ctx = bud->ctx;

    if (ctx->in_meta) {
        if (ctx->meta_len + len > bud->slcf->max_meta_size) {
            return ngx_http_smarty_body_fail(ctx, SMARTY_E_META_TOO_LARGE,
                                             "\"meta\" is larger than %uz "
                                             "bytes",
                                             bud->slcf->max_meta_size);
        }

        if (ctx->meta_len + len > ctx->meta_size) {
            size = ngx_max(ctx->meta_size * 2, ctx->meta_len + len);
            size = ngx_max(size, 1024);
            size = ngx_min(size, bud->slcf->max_meta_size);

            m = ngx_pnalloc(bud->r->pool, size);
            if (m == NULL) {
                return ngx_http_smarty_body_fail(ctx, SMARTY_E_INTERNAL,
                                                 NULL);
            }

            if (ctx->meta_len) {
                ngx_memcpy(m, ctx->meta, ctx->meta_len);
            }

            ctx->meta = m;
            ctx->meta_size = size;
        }

        ngx_memcpy(ctx->meta + ctx->meta_len, data, len);
        ctx->meta_len += len;

        return SMARTY_MP_OK;
    }

    if (EVP_DigestUpdate(ctx->md, data, len) != 1) {
        return ngx_http_smarty_body_fail(ctx, SMARTY_E_INTERNAL, NULL);
    }

    ctx->cur->data_end += len;       /* counts bytes until part_end */

    if (ctx->cur->data_end > bud->slcf->max_image_size) {
        return ngx_http_smarty_body_fail(ctx, SMARTY_E_IMAGE_TOO_LARGE,
                                         "image \"%*s\" is larger than "
                                         "%uz bytes",
                                         ngx_min(part->name_len, 64),
                                         part->name,
                                         bud->slcf->max_image_size);
    }

    return SMARTY_MP_OK;
}


static int
ngx_http_smarty_part_end(void *ud, smarty_mp_part_t *part)
{
    ngx_http_smarty_body_ud_t  *bud = ud;

    unsigned int            mdlen;
    ngx_http_smarty_ctx_t  *ctx;

    ctx = bud->ctx;

    if (ctx->in_meta) {
        ctx->in_meta = 0;
        return SMARTY_MP_OK;
    }

    if (EVP_DigestFinal_ex(ctx->md, ctx->cur->sha256, &mdlen) != 1) {
        return ngx_http_smarty_body_fail(ctx, SMARTY_E_INTERNAL, NULL);
    }

    ctx->cur->data_end = part->data_end;
    ctx->cur = NULL;

    return SMARTY_MP_OK;
}


static int
ngx_http_smarty_body_fail(ngx_http_smarty_ctx_t *ctx, smarty_err_e e,
    const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    ctx->body_err = e;

    if (fmt) {
        va_start(args, fmt);
        p = ngx_vslprintf((u_char *) ctx->body_msg,
                          (u_char *) ctx->body_msg + sizeof(ctx->body_msg) - 1,
                          fmt, args);
        va_end(args);
        *p = '\0';

    } else {
        ctx->body_msg[0] = '\0';
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
ngx_http_smarty_body_subset(ngx_http_request_t *r,
    ngx_http_smarty_ctx_t *ctx, ngx_uint_t *idx, ngx_uint_t n,
    u_char *meta, size_t meta_len, ngx_http_request_body_t **rbp,
    off_t *lenp)
{
    u_char                   *p, *head;
    off_t                     len;
    ngx_uint_t                i;
    ngx_chain_t              *out, **ll;
    ngx_http_smarty_part_t   *parts, *part;
    ngx_http_request_body_t  *rb;

    parts = ctx->parts.elts;
    out = NULL;
    ll = &out;
    len = 0;

    head = ngx_pnalloc(r->pool, 2 * ctx->boundary_len + 160);
    if (head == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(head, "--%*s\r\nContent-Disposition: form-data; "
                    "name=\"meta\"\r\nContent-Type: application/json"
                    "\r\n\r\n", ctx->boundary_len, ctx->boundary);

    if (ngx_http_smarty_body_mem(r, head, p - head, &ll) != NGX_OK
        || ngx_http_smarty_body_mem(r, meta, meta_len, &ll) != NGX_OK)
    {
        return NGX_ERROR;
    }

    len += (p - head) + meta_len;

    for (i = 0; i < n; i++) {
        part = &parts[ctx->m.images[idx[i]].part];

        p = ngx_pnalloc(r->pool, ctx->boundary_len + 6);
        if (p == NULL) {
            return NGX_ERROR;
        }

        /* CRLF ends the previous part, then the delimiter line */
        head = p;
        p = ngx_sprintf(p, "\r\n--%*s\r\n", ctx->boundary_len,
                        ctx->boundary);

        if (ngx_http_smarty_body_mem(r, head, p - head, &ll) != NGX_OK
            || ngx_http_smarty_body_range(r, part->start, part->data_end, &ll)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        len += (p - head) + (part->data_end - part->start);
    }

    p = ngx_pnalloc(r->pool, ctx->boundary_len + 8);
    if (p == NULL) {
        return NGX_ERROR;
    }

    head = p;
    p = ngx_sprintf(p, "\r\n--%*s--\r\n", ctx->boundary_len,
                    ctx->boundary);

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
