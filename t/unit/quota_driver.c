/*
 * smarty-gateway: the quota core driven from stdin, for
 * t/70-quota-script.t, which replays the same commands through
 * src/lua/quota.lua and compares the answers line by line.
 *
 *   quota_driver <policy> [<policy> ...]
 *
 * Every policy is one set (the space's, a client's); their limits,
 * flattened in order, are the items of every command, each with its own
 * state (fresh at start).  Commands, one a line, one answer line each:
 *
 *   specs                      the limits as quota.lua's ARGV ("rs:10:20")
 *   policy                     the RateLimit-Policy value
 *   c <now> <requests> <images>
 *                              check and spend: "<refused> <retry_ms>
 *                              <now> <remaining> <reset_ms> ..." (as the
 *                              script's reply)
 *   r <now> <at> <requests> <images>
 *                              refund: "<changed> <now> <remaining>
 *                              <reset_ms> ..."
 *
 * Exits 2 when a policy does not parse (the error on stderr), 1 on a
 * command it does not know.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smarty_quota.h"


#define MAX_SETS  4


static void
print_items(const smarty_quota_item_t *items, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        printf(" %llu %lld", (unsigned long long) items[i].remaining,
               (long long) items[i].reset_ms);
    }

    printf("\n");
    fflush(stdout);
}


int
main(int argc, char **argv)
{
    int                    i;
    char                   line[512], buf[1024], err[256];
    size_t                 n, k, changed;
    long long              now, at;
    unsigned long long     req, img;
    smarty_quota_set_t     sets[MAX_SETS];
    smarty_quota_item_t    items[MAX_SETS * SMARTY_QUOTA_MAX_LIMITS];
    smarty_quota_state_t   states[MAX_SETS * SMARTY_QUOTA_MAX_LIMITS];
    smarty_quota_result_t  res;

    if (argc < 2 || argc - 1 > MAX_SETS) {
        fprintf(stderr, "usage: %s <policy> [<policy> ...] (at most %d)\n",
                argv[0], MAX_SETS);
        return 2;
    }

    n = 0;
    memset(states, 0, sizeof(states));

    for (i = 1; i < argc; i++) {
        if (smarty_quota_parse(argv[i], strlen(argv[i]), &sets[i - 1], err,
                               sizeof(err))
            != 0)
        {
            fprintf(stderr, "%s\n", err);
            return 2;
        }

        for (k = 0; k < sets[i - 1].n; k++) {
            items[n].limit = &sets[i - 1].limit[k];
            items[n].state = &states[n];
            n++;
        }
    }

    while (fgets(line, sizeof(line), stdin) != NULL) {

        if (strncmp(line, "specs", 5) == 0) {
            for (k = 0; k < n; k++) {
                smarty_quota_limit_arg(items[k].limit, buf, sizeof(buf));
                printf("%s%s", k ? " " : "", buf);
            }

            printf("\n");
            fflush(stdout);

        } else if (strncmp(line, "policy", 6) == 0) {
            smarty_quota_policy_header(items, n, buf, sizeof(buf));
            printf("%s\n", buf);
            fflush(stdout);

        } else if (sscanf(line, "c %lld %llu %llu", &now, &req, &img) == 3) {
            smarty_quota_check(items, n, now, req, img, &res);
            printf("%zu %lld %lld", res.refused, (long long) res.retry_ms,
                   (long long) res.now);
            print_items(items, n);

        } else if (sscanf(line, "r %lld %lld %llu %llu", &now, &at, &req,
                          &img)
                   == 4)
        {
            changed = smarty_quota_refund(items, n, now, at, req, img);
            printf("%zu %lld", changed, now < 0 ? 0 : now);
            print_items(items, n);

        } else {
            fprintf(stderr, "unknown command: %s", line);
            return 1;
        }
    }

    return 0;
}
