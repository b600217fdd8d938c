/*
 * smarty-gateway: the error table.  Codes are part of the API: never rename
 * one, only add.  docs/reference.md lists them for users.
 */

#include <string.h>

#include "smarty_errors.h"


static const smarty_err_info_t  smarty_errs[SMARTY_E_LAST] = {
    [SMARTY_OK] = { 200, "ok", "ok" },

    [SMARTY_E_BAD_CONTENT_TYPE] = { 400, "bad_content_type",
        "the request body must be multipart/form-data" },
    [SMARTY_E_BAD_BOUNDARY] = { 400, "bad_boundary",
        "the multipart boundary is missing or malformed" },
    [SMARTY_E_BAD_MULTIPART] = { 400, "bad_multipart",
        "the multipart body is malformed" },
    [SMARTY_E_BAD_PART_HEADERS] = { 400, "bad_part_headers",
        "a multipart part has malformed headers or no name" },
    [SMARTY_E_DUPLICATE_PART] = { 400, "duplicate_part",
        "two multipart parts have the same name" },
    [SMARTY_E_MISSING_META] = { 400, "missing_meta",
        "the request has no \"meta\" part" },
    [SMARTY_E_BAD_META] = { 400, "bad_meta",
        "\"meta\" is not a JSON object" },
    [SMARTY_E_BAD_SPACE] = { 400, "bad_space",
        "meta.space must be a string holding one digit, \"0\" to \"9\"" },
    [SMARTY_E_BAD_IMAGES] = { 400, "bad_images",
        "meta.images must be an array of objects with a string \"name\"" },
    [SMARTY_E_DUPLICATE_IMAGE] = { 400, "duplicate_image",
        "meta.images names the same part twice" },
    [SMARTY_E_UNKNOWN_IMAGE] = { 400, "unknown_image",
        "meta.images names a part that is not in the body" },
    [SMARTY_E_UNREFERENCED_IMAGE] = { 400, "unreferenced_image",
        "an image part is not named in meta.images" },
    [SMARTY_E_UNEXPECTED_IMAGE] = { 400, "unexpected_image",
        "this method takes no image parts" },
    [SMARTY_E_BAD_PERSON_ID] = { 400, "bad_person_id",
        "meta.images[].person_id must be a positive integer" },
    [SMARTY_E_BAD_CREATE_NEW] = { 400, "bad_create_new",
        "meta.create_new must be a boolean" },
    [SMARTY_E_BAD_MODE] = { 400, "bad_mode",
        "meta.mode must be a non-empty array of known modes" },
    [SMARTY_E_EMPTY_BODY] = { 400, "empty_body",
        "the request has no body" },
    [SMARTY_E_BAD_FILTER] = { 400, "bad_filter",
        "a parameter of the query is malformed" },

    [SMARTY_E_BAD_REQUEST] = { 400, "bad_request",
        "the HTTP request is malformed" },
    [SMARTY_E_HEADERS_TOO_LARGE] = { 400, "headers_too_large",
        "a request header line, or all of them, is larger than the limit" },
    [SMARTY_E_URI_TOO_LONG] = { 414, "uri_too_long",
        "the request URI is longer than the limit" },
    [SMARTY_E_NOT_IMPLEMENTED] = { 501, "not_implemented",
        "the request uses an HTTP feature the gateway does not support, "
        "e.g. a Transfer-Encoding other than chunked" },

    [SMARTY_E_MISSING_KEY] = { 401, "missing_key",
        "no client key: send it as \"Authorization: Bearer <key>\" or as "
        "the oauth_token query parameter" },
    [SMARTY_E_UNKNOWN_KEY] = { 401, "unknown_key",
        "the client key is not known" },
    [SMARTY_E_SPACE_FORBIDDEN] = { 403, "space_forbidden",
        "this client may not use this space" },
    [SMARTY_E_METHOD_FORBIDDEN] = { 403, "method_forbidden",
        "this client may not call this method" },
    [SMARTY_E_WRITE_FORBIDDEN] = { 403, "write_forbidden",
        "this client may recognize but not change the space: create_new "
        "and update_embedding need the persons/enroll or persons/set "
        "right" },
    [SMARTY_E_OPERATOR_FORBIDDEN] = { 403, "operator_forbidden",
        "this client is not an operator" },

    [SMARTY_E_UNKNOWN_ENDPOINT] = { 404, "unknown_endpoint",
        "no such API method" },
    [SMARTY_E_METHOD_NOT_ALLOWED] = { 405, "method_not_allowed",
        "the API takes POST requests only" },

    [SMARTY_E_TOO_MANY_IMAGES] = { 413, "too_many_images",
        "too many images in one request" },
    [SMARTY_E_IMAGE_TOO_LARGE] = { 413, "image_too_large",
        "an image is larger than the limit" },
    [SMARTY_E_META_TOO_LARGE] = { 413, "meta_too_large",
        "the \"meta\" part is larger than the limit" },
    [SMARTY_E_BODY_TOO_LARGE] = { 413, "body_too_large",
        "the request body is larger than the limit" },
    [SMARTY_E_QUOTA_BATCH] = { 413, "quota_batch_too_large",
        "the request alone is more than a quota allows: split it" },

    [SMARTY_E_QUOTA_EXCEEDED] = { 429, "quota_exceeded",
        "a quota is spent: retry later" },

    [SMARTY_E_INTERNAL] = { 500, "internal_error",
        "the gateway failed to process the request" },
    [SMARTY_E_UPSTREAM_UNAVAILABLE] = { 502, "upstream_unavailable",
        "the recognition service could not be reached" },
    [SMARTY_E_UPSTREAM_ERROR] = { 502, "upstream_error",
        "the recognition service failed" },
    [SMARTY_E_UPSTREAM_AUTH] = { 502, "upstream_auth_failed",
        "the recognition service rejected the gateway's credentials" },
    [SMARTY_E_UPSTREAM_BAD_ANSWER] = { 502, "upstream_bad_answer",
        "the recognition service sent an answer the gateway cannot use" },
    [SMARTY_E_UPSTREAM_TIMEOUT] = { 504, "upstream_timeout",
        "the recognition service did not answer in time" },
    [SMARTY_E_QUOTA_UNAVAILABLE] = { 503, "quota_unavailable",
        "quotas cannot be checked now: retry later" },
    [SMARTY_E_AUDIT_UNAVAILABLE] = { 503, "audit_unavailable",
        "the audit stream cannot be read now (Redis is away): retry later" },

    [SMARTY_E_INVALID_TOKEN] = { 401, "invalid_token",
        "the access token is not valid (its client's key or the gateway's "
        "signing key changed, or it is not the gateway's): ask the token "
        "endpoint for a new one" },
    [SMARTY_E_TOKEN_EXPIRED] = { 401, "token_expired",
        "the access token has expired: ask the token endpoint for a new "
        "one" },
    [SMARTY_E_OAUTH_INVALID_REQUEST] = { 400, "invalid_request",
        "the token request is malformed" },
    [SMARTY_E_OAUTH_INVALID_CLIENT] = { 401, "invalid_client",
        "unknown client_id or wrong client_secret" },
    [SMARTY_E_OAUTH_INVALID_GRANT] = { 400, "invalid_grant",
        "the refresh_token is not valid, has expired or was already used: "
        "ask for a new token with grant_type=client_credentials" },
    [SMARTY_E_OAUTH_UNSUPPORTED_GRANT] = { 400, "unsupported_grant_type",
        "grant_type must be client_credentials or refresh_token" },
    [SMARTY_E_OAUTH_UNAVAILABLE] = { 503, "temporarily_unavailable",
        "refresh tokens cannot be checked now: ask for a new token with "
        "grant_type=client_credentials" },
};


const smarty_err_info_t *
smarty_err_info(smarty_err_e e)
{
    if ((unsigned) e >= SMARTY_E_LAST || smarty_errs[e].code == 0) {
        e = SMARTY_E_INTERNAL;
    }

    return &smarty_errs[e];
}


smarty_err_e
smarty_err_find(const char *code, size_t len)
{
    int  e;

    for (e = SMARTY_OK + 1; e < SMARTY_E_LAST; e++) {
        if (smarty_errs[e].code != NULL
            && strlen(smarty_errs[e].code) == len
            && memcmp(smarty_errs[e].code, code, len) == 0)
        {
            return (smarty_err_e) e;
        }
    }

    return SMARTY_OK;
}
