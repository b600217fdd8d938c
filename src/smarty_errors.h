/*
 * smarty-gateway: the stable error codes of every answer the gateway makes
 * itself.  Pure C; shared by the module, the pure cores and their tests.
 *
 * An error answer is the API's envelope:
 *   {"status":<http>,"body":{"error":"<sentence>","code":"<code>"},
 *    "htmlencoded":false,"last_modified":0}
 */

#ifndef SMARTY_ERRORS_H
#define SMARTY_ERRORS_H

#include <stddef.h>

typedef enum {
    SMARTY_OK = 0,

    /* 400: the request is malformed */
    SMARTY_E_BAD_CONTENT_TYPE,
    SMARTY_E_BAD_BOUNDARY,
    SMARTY_E_BAD_MULTIPART,
    SMARTY_E_BAD_PART_HEADERS,
    SMARTY_E_DUPLICATE_PART,
    SMARTY_E_MISSING_META,
    SMARTY_E_BAD_META,
    SMARTY_E_BAD_SPACE,
    SMARTY_E_BAD_IMAGES,
    SMARTY_E_DUPLICATE_IMAGE,
    SMARTY_E_UNKNOWN_IMAGE,
    SMARTY_E_UNREFERENCED_IMAGE,
    SMARTY_E_UNEXPECTED_IMAGE,
    SMARTY_E_BAD_PERSON_ID,
    SMARTY_E_BAD_CREATE_NEW,
    SMARTY_E_BAD_MODE,
    SMARTY_E_EMPTY_BODY,
    SMARTY_E_BAD_FILTER,          /* an operator view's query */

    /* 400 and others: nginx refused the HTTP request itself (error_page) */
    SMARTY_E_BAD_REQUEST,
    SMARTY_E_HEADERS_TOO_LARGE,
    SMARTY_E_URI_TOO_LONG,
    SMARTY_E_NOT_IMPLEMENTED,

    /* 401, 403: who may call what */
    SMARTY_E_MISSING_KEY,
    SMARTY_E_UNKNOWN_KEY,
    SMARTY_E_SPACE_FORBIDDEN,
    SMARTY_E_METHOD_FORBIDDEN,
    SMARTY_E_WRITE_FORBIDDEN,
    SMARTY_E_OPERATOR_FORBIDDEN,

    /* 404, 405 */
    SMARTY_E_UNKNOWN_ENDPOINT,
    SMARTY_E_METHOD_NOT_ALLOWED,

    /* 413: too much */
    SMARTY_E_TOO_MANY_IMAGES,
    SMARTY_E_IMAGE_TOO_LARGE,
    SMARTY_E_META_TOO_LARGE,
    SMARTY_E_BODY_TOO_LARGE,
    SMARTY_E_QUOTA_BATCH,

    /* 429: a quota is spent (the code names the limit, see smarty_quota) */
    SMARTY_E_QUOTA_EXCEEDED,

    /* 5xx */
    SMARTY_E_INTERNAL,
    SMARTY_E_UPSTREAM_UNAVAILABLE,
    SMARTY_E_UPSTREAM_ERROR,
    SMARTY_E_UPSTREAM_AUTH,
    SMARTY_E_UPSTREAM_BAD_ANSWER,
    SMARTY_E_UPSTREAM_TIMEOUT,
    SMARTY_E_QUOTA_UNAVAILABLE,
    SMARTY_E_AUDIT_UNAVAILABLE,

    /* the gateway's own tokens for local clients (docs/oauth.md): using
     * one, and the token endpoint's answers (RFC 6749's codes) */
    SMARTY_E_INVALID_TOKEN,
    SMARTY_E_TOKEN_EXPIRED,
    SMARTY_E_OAUTH_INVALID_REQUEST,
    SMARTY_E_OAUTH_INVALID_CLIENT,
    SMARTY_E_OAUTH_INVALID_GRANT,
    SMARTY_E_OAUTH_UNSUPPORTED_GRANT,
    SMARTY_E_OAUTH_UNAVAILABLE,

    SMARTY_E_LAST
} smarty_err_e;


typedef struct {
    int          status;     /* HTTP status */
    const char  *code;       /* stable snake_case code */
    const char  *message;    /* default human sentence */
} smarty_err_info_t;


const smarty_err_info_t *smarty_err_info(smarty_err_e e);

/* the error whose code is the len bytes at code, or SMARTY_OK if none */
smarty_err_e smarty_err_find(const char *code, size_t len);

#endif /* SMARTY_ERRORS_H */
