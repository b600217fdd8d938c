/*
 * smarty-gateway: libFuzzer target for the Redis Cluster core: any bytes
 * as an error reply and as a key.  A parsed redirection has a slot below
 * 16384, a port in 1..65535 and a NUL-terminated numeric-or-not host that
 * fits; a key's slot is below 16384 and, when the key has a non-empty
 * hash tag, equals the tag's own slot.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smarty_cluster.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t             s, e;
    unsigned           slot;
    smarty_redirect_t  r;
    const char        *key = (const char *) data;

    switch (smarty_cluster_redirect(key, size, &r)) {

    case SMARTY_REDIRECT_MOVED:
    case SMARTY_REDIRECT_ASK:
        if (r.slot >= SMARTY_CLUSTER_SLOTS || r.port < 1 || r.port > 65535
            || r.host[0] == '\0'
            || memchr(r.host, '\0', SMARTY_CLUSTER_HOST_LEN) == NULL)
        {
            abort();
        }

        (void) smarty_cluster_numeric(r.host);
        break;

    default:
        break;
    }

    slot = smarty_cluster_slot(key, size);

    if (slot >= SMARTY_CLUSTER_SLOTS) {
        abort();
    }

    s = 0;
    while (s < size && key[s] != '{') {
        s++;
    }

    if (s < size) {
        e = s + 1;
        while (e < size && key[e] != '}') {
            e++;
        }

        if (e < size && e > s + 1
            && smarty_cluster_slot(key + s + 1, e - s - 1) != slot
            && memchr(key + s + 1, '{', e - s - 1) == NULL)
        {
            abort();
        }
    }

    return 0;
}
