/*
 * smarty-gateway: Redis Cluster arithmetic (see smarty_cluster.h,
 * docs/redis.md).
 */

#include <arpa/inet.h>
#include <string.h>

#include "smarty_cluster.h"


unsigned
smarty_cluster_crc16(const char *buf, size_t len)
{
    size_t    i;
    unsigned  crc, j;

    crc = 0;

    for (i = 0; i < len; i++) {
        crc ^= (unsigned) (unsigned char) buf[i] << 8;

        for (j = 0; j < 8; j++) {
            crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) : (crc << 1);
            crc &= 0xffff;
        }
    }

    return crc;
}


unsigned
smarty_cluster_slot(const char *key, size_t len)
{
    size_t  s, e;

    for (s = 0; s < len; s++) {
        if (key[s] == '{') {
            break;
        }
    }

    if (s < len) {
        for (e = s + 1; e < len; e++) {
            if (key[e] == '}') {
                break;
            }
        }

        if (e < len && e != s + 1) {
            return smarty_cluster_crc16(key + s + 1, e - s - 1)
                   & (SMARTY_CLUSTER_SLOTS - 1);
        }
    }

    return smarty_cluster_crc16(key, len) & (SMARTY_CLUSTER_SLOTS - 1);
}


static int
smarty_cluster_prefix(const char *s, size_t len, const char *word)
{
    size_t  n;

    n = strlen(word);

    return len >= n && memcmp(s, word, n) == 0
           && (len == n || s[n] == ' ');
}


smarty_redirect_e
smarty_cluster_redirect(const char *err, size_t len, smarty_redirect_t *out)
{
    size_t             i, n, colon, hs, he;
    unsigned long      slot, port;
    smarty_redirect_e  type;

    memset(out, 0, sizeof(smarty_redirect_t));

    if (err == NULL) {
        return SMARTY_REDIRECT_NONE;
    }

    if (smarty_cluster_prefix(err, len, "TRYAGAIN")) {
        out->type = SMARTY_REDIRECT_TRYAGAIN;
        return out->type;
    }

    if (smarty_cluster_prefix(err, len, "CLUSTERDOWN")) {
        out->type = SMARTY_REDIRECT_CLUSTERDOWN;
        return out->type;
    }

    if (smarty_cluster_prefix(err, len, "MOVED")) {
        type = SMARTY_REDIRECT_MOVED;
        i = 6;

    } else if (smarty_cluster_prefix(err, len, "ASK")) {
        type = SMARTY_REDIRECT_ASK;
        i = 4;

    } else {
        return SMARTY_REDIRECT_NONE;
    }

    /* the slot: 1 to 5 digits, below 16384 */

    slot = 0;
    n = 0;

    while (i < len && err[i] >= '0' && err[i] <= '9' && n < 6) {
        slot = slot * 10 + (unsigned long) (err[i] - '0');
        i++;
        n++;
    }

    if (n == 0 || n > 5 || slot >= SMARTY_CLUSTER_SLOTS
        || i >= len || err[i] != ' ')
    {
        return SMARTY_REDIRECT_NONE;
    }

    i++;

    /* host:port, the port after the last ':' ("[::1]:7000" or "::1:7000") */

    hs = i;
    he = len;

    for (n = hs; n < len; n++) {
        if (err[n] == ' ' || err[n] == '\r' || err[n] == '\n') {
            he = n;
            break;
        }
    }

    colon = he;

    for (n = he; n > hs; n--) {
        if (err[n - 1] == ':') {
            colon = n - 1;
            break;
        }
    }

    if (colon == he || colon == hs || he - colon - 1 == 0
        || he - colon - 1 > 5)
    {
        return SMARTY_REDIRECT_NONE;
    }

    port = 0;

    for (n = colon + 1; n < he; n++) {
        if (err[n] < '0' || err[n] > '9') {
            return SMARTY_REDIRECT_NONE;
        }

        port = port * 10 + (unsigned long) (err[n] - '0');
    }

    if (port == 0 || port > 65535) {
        return SMARTY_REDIRECT_NONE;
    }

    if (err[hs] == '[' && err[colon - 1] == ']') {
        hs++;
        colon--;
    }

    if (colon <= hs || colon - hs >= SMARTY_CLUSTER_HOST_LEN) {
        return SMARTY_REDIRECT_NONE;
    }

    memcpy(out->host, err + hs, colon - hs);
    out->host[colon - hs] = '\0';

    if (memchr(out->host, '\0', colon - hs) != NULL) {
        out->host[0] = '\0';
        return SMARTY_REDIRECT_NONE;
    }

    out->type = type;
    out->slot = (unsigned) slot;
    out->port = (int) port;

    return type;
}


int
smarty_cluster_numeric(const char *host)
{
    unsigned char  buf[sizeof(struct in6_addr)];

    if (host == NULL || host[0] == '\0') {
        return 0;
    }

    return inet_pton(AF_INET, host, buf) == 1
           || inet_pton(AF_INET6, host, buf) == 1;
}
