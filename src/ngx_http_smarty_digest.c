/*
 * smarty-gateway: SHA-256 for the request path (see
 * ngx_http_smarty_digest.h): the algorithm fetched once per process, the
 * digest contexts kept for reuse.  They live as long as the process.
 */

#include "ngx_http_smarty_digest.h"


#define NGX_HTTP_SMARTY_DIGEST_KEEP  64     /* contexts kept for reuse */


static EVP_MD       *ngx_http_smarty_digest_sha256;
static EVP_MD_CTX   *ngx_http_smarty_digest_free[NGX_HTTP_SMARTY_DIGEST_KEEP];
static ngx_uint_t    ngx_http_smarty_digest_nfree;


const EVP_MD *
ngx_http_smarty_sha256(void)
{
    if (ngx_http_smarty_digest_sha256 == NULL) {
        ngx_http_smarty_digest_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    }

    return ngx_http_smarty_digest_sha256;
}


EVP_MD_CTX *
ngx_http_smarty_digest_get(void)
{
    if (ngx_http_smarty_digest_nfree > 0) {
        return ngx_http_smarty_digest_free[--ngx_http_smarty_digest_nfree];
    }

    return EVP_MD_CTX_new();
}


void
ngx_http_smarty_digest_put(EVP_MD_CTX *md)
{
    if (md == NULL) {
        return;
    }

    if (ngx_http_smarty_digest_nfree < NGX_HTTP_SMARTY_DIGEST_KEEP) {
        ngx_http_smarty_digest_free[ngx_http_smarty_digest_nfree++] = md;
        return;
    }

    EVP_MD_CTX_free(md);
}


ngx_int_t
ngx_http_smarty_digest(const u_char *p, size_t len, u_char *out)
{
    int            ok;
    unsigned int   n;
    EVP_MD_CTX    *md;
    const EVP_MD  *sha256;

    sha256 = ngx_http_smarty_sha256();
    md = ngx_http_smarty_digest_get();

    if (sha256 == NULL || md == NULL) {
        ngx_http_smarty_digest_put(md);
        return NGX_ERROR;
    }

    ok = EVP_DigestInit_ex(md, sha256, NULL) == 1
         && EVP_DigestUpdate(md, p, len) == 1
         && EVP_DigestFinal_ex(md, out, &n) == 1;

    ngx_http_smarty_digest_put(md);

    return ok ? NGX_OK : NGX_ERROR;
}
