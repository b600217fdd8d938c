/*
 * smarty-gateway: the audit record of a request (pure C, no nginx types):
 * its JSON, and the filters of the audit view (docs/audit.md).  Never a
 * key, a token or image bytes: a record holds names, numbers and the
 * images' SHA-256.
 */

#ifndef SMARTY_AUDIT_H
#define SMARTY_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "smarty_meta.h"


#define SMARTY_AUDIT_SHA256_LEN  32


typedef struct {
    int64_t                time_ms;      /* the request ended, Unix ms */
    const char            *id;           /* the request id */
    size_t                 id_len;
    const char            *instance;     /* the gateway that served it */
    size_t                 instance_len;
    const char            *client;       /* NULL: no client identified */
    size_t                 client_len;
    const char            *method;       /* NULL: not an API method */
    const smarty_meta_t   *meta;         /* NULL: meta not validated */

    /* the images' SHA-256: n of them, stride bytes apart */
    size_t                 nimages;
    const unsigned char   *sha256;
    size_t                 sha256_stride;

    const char            *cache;        /* NULL: not looked up */
    uint64_t               cache_hits;   /* images answered from it */
    const char            *quota;        /* NULL: no limit applied */
    const char            *quota_limit;  /* NULL: none decided */
    int64_t                quota_remaining;  /* -1: none */
    int                    upstream_status;  /* 0: no answer */
    int64_t                upstream_ms;      /* -1: not called */
    int                    status;       /* the answer's */
    const char            *error;        /* NULL: none */
    uint64_t               bytes_in;
    uint64_t               bytes_out;
    int64_t                duration_ms;
} smarty_audit_record_t;


/*
 * The record as one line of JSON (no newline), snprintf-like: writes at
 * most size bytes (NUL included) at out and returns the length the whole
 * record needs.  Every member is always there: null when unknown, [] for
 * no image or person.
 */
size_t smarty_audit_json(const smarty_audit_record_t *rec, char *out,
    size_t size);


/* what the audit view keeps of the records it reads */

typedef struct {
    const char            *client;      /* NULL: any */
    size_t                 client_len;
    const char            *method;      /* NULL: any */
    size_t                 method_len;
    int                    space;       /* -1: any */
    int                    has_sha256;
    unsigned char          sha256[SMARTY_AUDIT_SHA256_LEN];
    int64_t                person_id;   /* 0: any */
    int                    status_min;  /* 0: any */
    int                    status_max;
} smarty_audit_filter_t;


/*
 * Whether the record (len bytes of JSON) passes the filter: 1 yes, 0 no,
 * -1 it is not a record.
 */
int smarty_audit_match(const char *json, size_t len,
    const smarty_audit_filter_t *f);

/*
 * A status filter: "429", or a class "4xx": 0 and *min, *max set, or -1.
 */
int smarty_audit_status_range(const char *s, size_t len, int *min, int *max);

/* 64 hex digits into 32 bytes: 0, or -1 */
int smarty_audit_hex(const char *s, size_t len,
    unsigned char out[SMARTY_AUDIT_SHA256_LEN]);

#endif /* SMARTY_AUDIT_H */
