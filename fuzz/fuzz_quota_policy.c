/*
 * smarty-gateway: libFuzzer target for the quota policy parser.
 *
 * Input: a policy.  Checked: no crash, no read past the input (it is not
 * NUL-terminated); on failure a non-empty printable one-line message; on
 * success 1..8 limits with known units and windows, counts and bursts in
 * range, no two of the same unit and window, and the canonical text of
 * the set parses back to the same set.  Then the arithmetic on the set:
 * a few checks and a refund at clocks and amounts taken from the input
 * keep their invariants (remaining within the capacity, a refusal names
 * an item and a wait, states never negative) and never overflow (UBSan).
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smarty_quota.h"


#define fz_assert(c)                                                          \
    if (!(c)) {                                                               \
        fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c);               \
        abort();                                                              \
    }


static uint64_t
fz_u64(const uint8_t *data, size_t size, size_t at)
{
    size_t    i;
    uint64_t  v;

    v = 0;

    for (i = 0; i < 8; i++) {
        v = (v << 8) | (size ? data[(at + i) % size] : 0);
    }

    return v;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                    rc, admitted;
    char                  *copy, err[256], text[1024], *p;
    size_t                 i, j, len;
    int64_t                now;
    uint64_t               amount, cap;
    smarty_quota_set_t     set, again;
    smarty_quota_item_t    items[SMARTY_QUOTA_MAX_LIMITS];
    smarty_quota_state_t   states[SMARTY_QUOTA_MAX_LIMITS];
    smarty_quota_result_t  res;

    /* an exact-size copy, so that ASan sees any read past the end */
    copy = malloc(size ? size : 1);
    if (copy == NULL) {
        return 0;
    }
    memcpy(copy, data, size);

    rc = smarty_quota_parse(copy, size, &set, err, sizeof(err));

    if (rc != 0) {
        fz_assert(rc == -1);
        fz_assert(err[0] != '\0');
        for (p = err; *p; p++) {
            fz_assert(*p >= 0x20 && *p < 0x7f);
        }
        free(copy);
        return 0;
    }

    fz_assert(set.n >= 1 && set.n <= SMARTY_QUOTA_MAX_LIMITS);

    len = 0;

    for (i = 0; i < set.n; i++) {
        fz_assert(set.limit[i].unit == 'r' || set.limit[i].unit == 'i');
        fz_assert(smarty_quota_window_ms(set.limit[i].window) > 0);
        fz_assert(set.limit[i].count >= 1
                  && set.limit[i].count <= SMARTY_QUOTA_MAX_COUNT);
        fz_assert(set.limit[i].burst >= 1
                  && set.limit[i].burst <= SMARTY_QUOTA_MAX_COUNT);
        fz_assert(set.limit[i].window == 's'
                  || set.limit[i].burst == set.limit[i].count);

        for (j = 0; j < i; j++) {
            fz_assert(set.limit[i].unit != set.limit[j].unit
                      || set.limit[i].window != set.limit[j].window);
        }

        len += smarty_quota_limit_text(&set.limit[i], text + len,
                                       sizeof(text) - len);
        text[len++] = ';';
    }

    rc = smarty_quota_parse(text, len, &again, err, sizeof(err));
    fz_assert(rc == 0);
    fz_assert(again.n == set.n);

    for (i = 0; i < set.n; i++) {
        fz_assert(again.limit[i].unit == set.limit[i].unit
                  && again.limit[i].window == set.limit[i].window
                  && again.limit[i].count == set.limit[i].count
                  && again.limit[i].burst == set.limit[i].burst);
    }

    /* the arithmetic on this set */

    memset(states, 0, sizeof(states));

    for (i = 0; i < set.n; i++) {
        items[i].limit = &set.limit[i];
        items[i].state = &states[i];
    }

    now = (int64_t) (fz_u64(data, size, 0) % 253402300800000ULL);

    for (j = 0; j < 6; j++) {
        amount = fz_u64(data, size, j * 3 + 1);
        amount = (j & 1) ? amount % 2000 : amount;

        admitted = smarty_quota_check(items, set.n, now, 1, amount, &res);

        fz_assert(admitted == (res.refused == 0));
        fz_assert(res.refused <= set.n);
        fz_assert(admitted ? res.retry_ms == 0
                           : (res.retry_ms > 0
                              || res.retry_ms == SMARTY_QUOTA_NEVER));

        for (i = 0; i < set.n; i++) {
            cap = set.limit[i].window == 's' ? set.limit[i].burst
                                             : set.limit[i].count;
            fz_assert(items[i].remaining <= cap);
            fz_assert(items[i].reset_ms >= 0);
            fz_assert(states[i].v >= 0);
        }

        smarty_quota_policy_header(items, set.n, text, sizeof(text));
        smarty_quota_ratelimit_header(
            &items[smarty_quota_pick(items, set.n, res.refused)], text,
            sizeof(text));

        now += (int64_t) (fz_u64(data, size, j * 5 + 2) % 100000);
    }

    smarty_quota_refund(items, set.n, now, now - 1000, 1, amount);

    for (i = 0; i < set.n; i++) {
        fz_assert(states[i].v >= 0);
    }

    free(copy);

    return 0;
}
