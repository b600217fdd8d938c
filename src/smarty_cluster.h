/*
 * smarty-gateway: Redis Cluster arithmetic without nginx types: the slot
 * of a key (CRC16 of its hash tag, as Redis computes it) and the parse of
 * the redirection errors a node answers (MOVED, ASK).  Used by the
 * cluster router (ngx_http_smarty_redis_cluster.c); docs/redis.md.
 */

#ifndef SMARTY_CLUSTER_H
#define SMARTY_CLUSTER_H

#include <stddef.h>


#define SMARTY_CLUSTER_SLOTS  16384

/* "255.255.255.255" or an IPv6 address, NUL-terminated */
#define SMARTY_CLUSTER_HOST_LEN  64


typedef enum {
    SMARTY_REDIRECT_NONE = 0,   /* not a redirection */
    SMARTY_REDIRECT_MOVED,      /* the slot lives elsewhere for good */
    SMARTY_REDIRECT_ASK,        /* this key only, this once (migrating) */
    SMARTY_REDIRECT_TRYAGAIN,   /* a slot half moved: ask again shortly */
    SMARTY_REDIRECT_CLUSTERDOWN /* the cluster cannot serve the slot now */
} smarty_redirect_e;


typedef struct {
    smarty_redirect_e  type;
    unsigned           slot;
    char               host[SMARTY_CLUSTER_HOST_LEN];  /* "" for TRYAGAIN,
                                                          CLUSTERDOWN */
    int                port;
} smarty_redirect_t;


/* CRC16-CCITT (XModem), the one Redis Cluster uses */
unsigned smarty_cluster_crc16(const char *buf, size_t len);

/*
 * The slot of a key: the CRC16 of the part between the first "{" and the
 * next "}" when that part is not empty, else of the whole key; modulo
 * 16384.
 */
unsigned smarty_cluster_slot(const char *key, size_t len);

/*
 * An error reply's text (without the leading "-"): "MOVED 3999
 * 127.0.0.1:6381", "ASK 3999 [::1]:6381" or "::1:6381" (the port after
 * the last ':'), "TRYAGAIN ...", "CLUSTERDOWN ...".  Returns the type;
 * SMARTY_REDIRECT_NONE for anything else, and for a MOVED or ASK that
 * does not parse (a slot out of range, no port, a host too long or
 * empty).
 */
smarty_redirect_e smarty_cluster_redirect(const char *err, size_t len,
    smarty_redirect_t *out);

/*
 * Whether host is a numeric IPv4 or IPv6 address (the gateway never
 * resolves names in a worker: a node announced by name is not used).
 */
int smarty_cluster_numeric(const char *host);

#endif /* SMARTY_CLUSTER_H */
