/*
 * smarty-gateway: SHA-256 for the request path, without its setup costs
 * (docs/architecture.md).  OpenSSL 3 looks the algorithm up, under a
 * lock, on every EVP_sha256()-style call and allocates a context per
 * digest: a worker fetches SHA-256 once and reuses its contexts.  The
 * image hashes (the body), the parameters' id (the cache) and the
 * clients' keys (auth) use it.  A worker has one thread: nothing here is
 * for the thread pool.
 */

#ifndef NGX_HTTP_SMARTY_DIGEST_H
#define NGX_HTTP_SMARTY_DIGEST_H

#include <ngx_config.h>
#include <ngx_core.h>

#include <openssl/evp.h>


/* the worker's SHA-256, fetched on first use; NULL if OpenSSL has none */
const EVP_MD *ngx_http_smarty_sha256(void);

/*
 * A digest context, the worker's to reuse: give it back when done (a
 * request's may live across events: it takes one of its own).  NULL when
 * memory ran out.
 */
EVP_MD_CTX *ngx_http_smarty_digest_get(void);
void ngx_http_smarty_digest_put(EVP_MD_CTX *md);

/* the SHA-256 of len bytes at p into out (32 bytes): NGX_OK, NGX_ERROR */
ngx_int_t ngx_http_smarty_digest(const u_char *p, size_t len, u_char *out);

#endif /* NGX_HTTP_SMARTY_DIGEST_H */
