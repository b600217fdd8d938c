/*
 * smarty-gateway's benchmark: the hash bound (bench/README.md).  Built
 * apart from the gateway, into a .so of its own, for bench/run.pl only.
 *
 *     location = /hashbound {
 *         client_body_buffer_size 8m;
 *         smarty_hashbound /path/to/answer.json;
 *     }
 *
 * What no content-keyed cache can avoid: the same nginx reads the upload
 * into memory and SHA-256s every byte of it, then answers the file's
 * bytes (read once, at configuration time) as application/json.  A body
 * that nginx wrote to a temp file is refused (500): the bound is about
 * memory, and the benchmark gives it the gateway's buffer size.
 *
 * "smarty_hashbound <file> nohash" reads the upload and answers, without
 * hashing: the read bound (stock nginx's "return" answers before the
 * upload is read, which a client sending megabytes does not follow).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/evp.h>


typedef struct {
    ngx_str_t   answer;
    ngx_flag_t  hash;
} ngx_http_smarty_hashbound_conf_t;


static ngx_int_t ngx_http_smarty_hashbound_handler(ngx_http_request_t *r);
static void ngx_http_smarty_hashbound_body(ngx_http_request_t *r);
static char *ngx_http_smarty_hashbound(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_http_smarty_hashbound_create_conf(ngx_conf_t *cf);
static ngx_int_t ngx_http_smarty_hashbound_init_process(ngx_cycle_t *cycle);
static void ngx_http_smarty_hashbound_exit_process(ngx_cycle_t *cycle);


/* one digest context per worker, the algorithm fetched once */
static EVP_MD_CTX  *ngx_http_smarty_hashbound_md;
static EVP_MD      *ngx_http_smarty_hashbound_sha256;


static ngx_command_t  ngx_http_smarty_hashbound_commands[] = {

    { ngx_string("smarty_hashbound"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_smarty_hashbound,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_smarty_hashbound_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */
    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */
    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */
    ngx_http_smarty_hashbound_create_conf, /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_smarty_hashbound_module = {
    NGX_MODULE_V1,
    &ngx_http_smarty_hashbound_module_ctx, /* module context */
    ngx_http_smarty_hashbound_commands,    /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_smarty_hashbound_init_process, /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_smarty_hashbound_exit_process, /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_smarty_hashbound_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    if (r->method != NGX_HTTP_POST) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_read_client_request_body(r,
                                           ngx_http_smarty_hashbound_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_smarty_hashbound_body(ngx_http_request_t *r)
{
    u_char                             md[EVP_MAX_MD_SIZE];
    unsigned int                       mdlen;
    ngx_buf_t                         *b;
    ngx_chain_t                       *cl, out;
    ngx_int_t                          rc;
    ngx_http_smarty_hashbound_conf_t  *hcf;

    hcf = ngx_http_get_module_loc_conf(r, ngx_http_smarty_hashbound_module);

    if (r->request_body == NULL || ngx_http_smarty_hashbound_md == NULL
        || (hcf->hash
            && EVP_DigestInit_ex(ngx_http_smarty_hashbound_md,
                                 ngx_http_smarty_hashbound_sha256, NULL)
               != 1))
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file || !ngx_buf_in_memory(b)) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "smarty_hashbound: the body is not in memory: "
                          "raise client_body_buffer_size");
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        if (hcf->hash
            && EVP_DigestUpdate(ngx_http_smarty_hashbound_md, b->pos,
                                b->last - b->pos)
               != 1)
        {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    if (hcf->hash
        && EVP_DigestFinal_ex(ngx_http_smarty_hashbound_md, md, &mdlen) != 1)
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    b->pos = hcf->answer.data;
    b->last = hcf->answer.data + hcf->answer.len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = hcf->answer.len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    ngx_http_finalize_request(r, ngx_http_output_filter(r, &out));
}


/* smarty_hashbound <file> [nohash]: the answer's bytes, read now */

static char *
ngx_http_smarty_hashbound(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_smarty_hashbound_conf_t  *hcf = conf;

    ssize_t                    n;
    ngx_str_t                 *value;
    ngx_file_t                 file;
    ngx_file_info_t            fi;
    ngx_http_core_loc_conf_t  *clcf;

    value = cf->args->elts;
    hcf->hash = 1;

    if (cf->args->nelts == 3) {
        if (ngx_strcmp(value[2].data, "nohash") != 0) {
            return "takes \"nohash\" or nothing after the file";
        }

        hcf->hash = 0;
    }

    if (ngx_conf_full_name(cf->cycle, &value[1], 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.name = value[1];
    file.log = cf->log;

    file.fd = ngx_open_file(value[1].data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR) {
        ngx_close_file(file.fd);
        return NGX_CONF_ERROR;
    }

    hcf->answer.len = ngx_file_size(&fi);
    hcf->answer.data = ngx_pnalloc(cf->pool, hcf->answer.len + 1);

    if (hcf->answer.data == NULL) {
        ngx_close_file(file.fd);
        return NGX_CONF_ERROR;
    }

    n = ngx_read_file(&file, hcf->answer.data, hcf->answer.len, 0);
    ngx_close_file(file.fd);

    if (n != (ssize_t) hcf->answer.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "reading \"%V\" failed",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_smarty_hashbound_handler;

    return NGX_CONF_OK;
}


static void *
ngx_http_smarty_hashbound_create_conf(ngx_conf_t *cf)
{
    return ngx_pcalloc(cf->pool, sizeof(ngx_http_smarty_hashbound_conf_t));
}


static ngx_int_t
ngx_http_smarty_hashbound_init_process(ngx_cycle_t *cycle)
{
    ngx_http_smarty_hashbound_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    ngx_http_smarty_hashbound_md = EVP_MD_CTX_new();

    if (ngx_http_smarty_hashbound_sha256 == NULL
        || ngx_http_smarty_hashbound_md == NULL)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "smarty_hashbound: no SHA-256");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_smarty_hashbound_exit_process(ngx_cycle_t *cycle)
{
    EVP_MD_CTX_free(ngx_http_smarty_hashbound_md);
    EVP_MD_free(ngx_http_smarty_hashbound_sha256);
    ngx_http_smarty_hashbound_md = NULL;
    ngx_http_smarty_hashbound_sha256 = NULL;
}
