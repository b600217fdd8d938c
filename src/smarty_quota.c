/*
 * smarty-gateway: quotas, the pure part (see smarty_quota.h).
 *
 * Every step here has its twin in src/lua/quota.lua and
 * src/lua/quota_refund.lua, in the same order and with the same integer
 * arithmetic: change both or neither (t/70-quota-script.t compares them).
 */

#include <stdio.h>
#include <string.h>

#include "smarty_quota.h"


typedef struct {
    int      ok;                /* room for the amount (or amount 0) */
    int64_t  retry;             /* ms from now when not ok */
    int64_t  t;                 /* the state as read at now, ... */
    int64_t  v;
    int64_t  nv;                /* ... and v after the spend */
    int64_t  te;                /* GCRA: the clock used, max(now, t) */
} smarty_quota_eval_t;


static int smarty_quota_parse_count(const char *p, const char *end,
    uint64_t *out);
static void smarty_quota_err(char *err, size_t errlen, const char *tok,
    size_t toklen, const char *what);
static uint64_t smarty_quota_amount(const smarty_quota_limit_t *l,
    uint64_t requests, uint64_t images);
static void smarty_quota_read(const smarty_quota_limit_t *l,
    const smarty_quota_state_t *st, int64_t now, smarty_quota_eval_t *e);
static void smarty_quota_try(const smarty_quota_limit_t *l, int64_t now,
    uint64_t amount, smarty_quota_eval_t *e);
static void smarty_quota_measure(smarty_quota_item_t *it, int64_t now,
    int64_t t, int64_t v, int64_t te);
static int64_t smarty_quota_ceil_div(int64_t a, int64_t b);


#define SMARTY_QUOTA_IS_SEP(c)  ((c) == ' ' || (c) == '\t' || (c) == ';')


/* --- parsing ------------------------------------------------------------- */

int
smarty_quota_parse(const char *s, size_t len, smarty_quota_set_t *set,
    char *err, size_t errlen)
{
    size_t                 i;
    uint64_t               count;
    const char            *p, *end, *tok, *q;
    smarty_quota_limit_t  *l, *last;
    int                    last_burst;

    set->n = 0;
    p = s;
    end = s + len;
    last = NULL;
    last_burst = 0;

    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }

    for ( ;; ) {

        while (p < end && SMARTY_QUOTA_IS_SEP(*p)) {
            if (*p == ';') {
                last = NULL;            /* a burst never crosses a ';' */
            }
            p++;
        }

        if (p == end) {
            break;
        }

        tok = p;

        while (p < end && !SMARTY_QUOTA_IS_SEP(*p)) {
            p++;
        }

        if (p - tok >= 6 && memcmp(tok, "burst=", 6) == 0) {

            if (last == NULL || last->window != 's') {
                smarty_quota_err(err, errlen, tok, p - tok,
                    "a burst must follow a per-second limit, as in "
                    "\"10r/s burst=20\"");
                return -1;
            }

            if (last_burst) {
                smarty_quota_err(err, errlen, tok, p - tok,
                    "the limit already has a burst");
                return -1;
            }

            if (smarty_quota_parse_count(tok + 6, p, &count) != 0) {
                smarty_quota_err(err, errlen, tok, p - tok,
                    "the burst must be a number from 1 to 1000000000");
                return -1;
            }

            last->burst = count;
            last_burst = 1;
            continue;
        }

        /* count unit "/" window */

        q = tok;

        while (q < p && *q >= '0' && *q <= '9') {
            q++;
        }

        if (q == tok || p - q != 3 || q[1] != '/') {
            smarty_quota_err(err, errlen, tok, p - tok,
                "a limit is <count><r|i>/<s|m|h|d>, as in \"10r/s\" or "
                "\"1000i/m\"");
            return -1;
        }

        if (smarty_quota_parse_count(tok, q, &count) != 0) {
            smarty_quota_err(err, errlen, tok, p - tok,
                "the count must be a number from 1 to 1000000000");
            return -1;
        }

        if (q[0] != 'r' && q[0] != 'i') {
            smarty_quota_err(err, errlen, tok, p - tok,
                "the unit must be \"r\" (requests) or \"i\" (images)");
            return -1;
        }

        if (smarty_quota_window_ms((unsigned char) q[2]) == 0) {
            smarty_quota_err(err, errlen, tok, p - tok,
                "the window must be \"s\", \"m\", \"h\" or \"d\"");
            return -1;
        }

        for (i = 0; i < set->n; i++) {
            if (set->limit[i].unit == (unsigned char) q[0]
                && set->limit[i].window == (unsigned char) q[2])
            {
                smarty_quota_err(err, errlen, tok, p - tok,
                    "a second limit of the same unit and window");
                return -1;
            }
        }

        if (set->n == SMARTY_QUOTA_MAX_LIMITS) {
            smarty_quota_err(err, errlen, tok, p - tok,
                "more than 8 limits");
            return -1;
        }

        l = &set->limit[set->n++];
        l->unit = (unsigned char) q[0];
        l->window = (unsigned char) q[2];
        l->count = count;
        l->burst = count;

        last = l;
        last_burst = 0;
    }

    if (set->n == 0) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "the policy holds no limit");
        }
        return -1;
    }

    return 0;
}


/* a decimal number of 1 to 9 digits at [p, end): 0 and *out, or -1 */

static int
smarty_quota_digits(const char *p, const char *end, uint64_t *out)
{
    uint64_t  n;

    if (p >= end || end - p > 9) {
        return -1;
    }

    for (n = 0; p < end; p++) {
        if (*p < '0' || *p > '9') {
            return -1;
        }

        n = n * 10 + (uint64_t) (*p - '0');
    }

    *out = n;

    return 0;
}


int
smarty_quota_share_parse(const char *s, size_t len, uint64_t *num,
    uint64_t *den)
{
    uint64_t     n, d, frac;
    const char  *end, *sep;

    end = s + len;
    sep = memchr(s, '/', len);

    if (sep != NULL) {
        if (smarty_quota_digits(s, sep, &n) != 0
            || smarty_quota_digits(sep + 1, end, &d) != 0)
        {
            return -1;
        }

    } else {
        sep = memchr(s, '.', len);
        d = 1;

        if (smarty_quota_digits(s, sep ? sep : end, &n) != 0) {
            return -1;
        }

        if (sep != NULL) {
            if (end - sep - 1 < 1 || end - sep - 1 > 6
                || smarty_quota_digits(sep + 1, end, &frac) != 0)
            {
                return -1;
            }

            for (sep++; sep < end; sep++) {
                d *= 10;
            }

            n = n * d + frac;
        }
    }

    if (n == 0 || d == 0 || n > d || d > 1000000) {
        return -1;
    }

    *num = n;
    *den = d;

    return 0;
}


int
smarty_quota_slot(const char *space, size_t len)
{
    if (len == 1 && space[0] >= '0' && space[0] <= '9') {
        return space[0] - '0';
    }

    if (len == 1 && space[0] == '*') {
        return SMARTY_QUOTA_ANY;
    }

    if (len == 9 && memcmp(space, "detectors", 9) == 0) {
        return SMARTY_QUOTA_DETECTORS;
    }

    return -1;
}


int
smarty_quota_sets_add(smarty_quota_sets_t *sets, smarty_quota_set_t *storage,
    const char *space, size_t slen, const char *policy, size_t plen,
    char *err, size_t errlen)
{
    int  slot;

    slot = smarty_quota_slot(space, slen);

    if (slot < 0) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "\"%.*s\" is not a space: \"0\" to \"9\", "
                     "\"*\" or \"detectors\"", (int) (slen > 32 ? 32 : slen),
                     space);
        }
        return -1;
    }

    if (sets->set[slot] != NULL) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "a second policy for space \"%.*s\"",
                     (int) slen, space);
        }
        return -1;
    }

    memset(storage, 0, sizeof(smarty_quota_set_t));

    if (smarty_quota_parse(policy, plen, storage, err, errlen) != 0) {
        return -1;
    }

    sets->set[slot] = storage;

    return 0;
}


const smarty_quota_set_t *
smarty_quota_sets_get(const smarty_quota_sets_t *sets, int slot)
{
    if (sets == NULL || slot < 0 || slot >= SMARTY_QUOTA_SLOTS) {
        return NULL;
    }

    if (sets->set[slot] != NULL) {
        return sets->set[slot];
    }

    return slot < SMARTY_QUOTA_DETECTORS ? sets->set[SMARTY_QUOTA_ANY] : NULL;
}


static int
smarty_quota_parse_count(const char *p, const char *end, uint64_t *out)
{
    uint64_t  n;

    if (p == end) {
        return -1;
    }

    n = 0;

    for ( /* void */ ; p < end; p++) {
        if (*p < '0' || *p > '9') {
            return -1;
        }

        n = n * 10 + (uint64_t) (*p - '0');

        if (n > SMARTY_QUOTA_MAX_COUNT) {
            return -1;
        }
    }

    if (n == 0) {
        return -1;
    }

    *out = n;

    return 0;
}


/* "<token>": what; the token cut at 40 bytes, unprintable bytes as '?' */

static void
smarty_quota_err(char *err, size_t errlen, const char *tok, size_t toklen,
    const char *what)
{
    char    buf[48];
    size_t  i, n;

    if (err == NULL || errlen == 0) {
        return;
    }

    n = toklen > 40 ? 40 : toklen;

    for (i = 0; i < n; i++) {
        buf[i] = (tok[i] > 0x20 && tok[i] < 0x7f && tok[i] != '"')
                 ? tok[i] : '?';
    }

    buf[n] = '\0';

    snprintf(err, errlen, "\"%s%s\": %s", buf, toklen > n ? "..." : "",
             what);
}


int64_t
smarty_quota_window_ms(unsigned char window)
{
    switch (window) {
    case 's':
        return 1000;
    case 'm':
        return 60000;
    case 'h':
        return 3600000;
    case 'd':
        return 86400000;
    default:
        return 0;
    }
}


/* --- the arithmetic ------------------------------------------------------ */

static int64_t
smarty_quota_ceil_div(int64_t a, int64_t b)
{
    /* a >= 0, b > 0 */
    return a / b + (a % b != 0);
}


static uint64_t
smarty_quota_amount(const smarty_quota_limit_t *l, uint64_t requests,
    uint64_t images)
{
    return l->unit == 'r' ? requests : images;
}


/*
 * The state as it stands at now: a GCRA debt drained by the time passed
 * since it was written (the clock taken as max(now, t)), a window rolled
 * over to now's window if that is later.
 */

static void
smarty_quota_read(const smarty_quota_limit_t *l,
    const smarty_quota_state_t *st, int64_t now, smarty_quota_eval_t *e)
{
    int64_t  n, w, ws, d, dt;

    e->t = st->t;
    e->v = st->v < 0 ? 0 : st->v;

    if (l->window == 's') {
        n = (int64_t) l->count;
        e->te = now > e->t ? now : e->t;
        dt = e->te - e->t;
        d = e->v;

        if (d > 0 && dt >= smarty_quota_ceil_div(d, n)) {
            d = 0;

        } else if (d > 0) {
            d -= dt * n;                /* dt * n < d + n: no overflow */
        }

        e->t = e->te;
        e->v = d;

        return;
    }

    w = smarty_quota_window_ms(l->window);
    ws = now - now % w;
    e->te = now;

    if (ws > e->t) {
        e->t = ws;
        e->v = 0;
    }
}


/* is there room for amount at now; e->nv the state's v after it */

static void
smarty_quota_try(const smarty_quota_limit_t *l, int64_t now,
    uint64_t amount, smarty_quota_eval_t *e)
{
    int64_t  cap, cost;

    e->nv = e->v;
    e->retry = 0;
    e->ok = 1;

    if (amount == 0) {
        return;
    }

    if (l->window == 's') {

        if (amount > l->burst) {
            e->ok = 0;
            e->retry = SMARTY_QUOTA_NEVER;
            return;
        }

        cap = (int64_t) l->burst * 1000;
        cost = (int64_t) amount * 1000;

        if (e->v + cost <= cap) {
            e->nv = e->v + cost;
            return;
        }

        e->ok = 0;
        e->retry = (e->te - now)
                   + smarty_quota_ceil_div(e->v + cost - cap,
                                           (int64_t) l->count);
        return;
    }

    if (amount > l->count) {
        e->ok = 0;
        e->retry = SMARTY_QUOTA_NEVER;
        return;
    }

    if (e->v + (int64_t) amount <= (int64_t) l->count) {
        e->nv = e->v + (int64_t) amount;
        return;
    }

    e->ok = 0;
    e->retry = e->t + smarty_quota_window_ms(l->window) - now;
}


/* remaining and reset of an item whose state reads (t, v) at now */

static void
smarty_quota_measure(smarty_quota_item_t *it, int64_t now, int64_t t,
    int64_t v, int64_t te)
{
    int64_t                      cap;
    const smarty_quota_limit_t  *l;

    l = it->limit;

    if (l->window == 's') {
        cap = (int64_t) l->burst * 1000;
        it->remaining = v >= cap ? 0 : (uint64_t) ((cap - v) / 1000);
        it->reset_ms = (te - now)
                       + smarty_quota_ceil_div(v, (int64_t) l->count);
        return;
    }

    it->remaining = v >= (int64_t) l->count ? 0 : l->count - (uint64_t) v;
    it->reset_ms = t + smarty_quota_window_ms(l->window) - now;
}


int
smarty_quota_check(smarty_quota_item_t *items, size_t n, int64_t now,
    uint64_t requests, uint64_t images, smarty_quota_result_t *res)
{
    size_t               i;
    int64_t              worst;
    uint64_t             amount;
    smarty_quota_eval_t  e[2 * SMARTY_QUOTA_MAX_LIMITS], one, *ep;

    if (now < 0) {
        now = 0;
    }

    res->refused = 0;
    res->retry_ms = 0;
    res->now = now;
    worst = 0;

    /* pass 1: may every limit take its amount? */

    for (i = 0; i < n; i++) {
        ep = i < 2 * SMARTY_QUOTA_MAX_LIMITS ? &e[i] : &one;
        amount = smarty_quota_amount(items[i].limit, requests, images);

        smarty_quota_read(items[i].limit, items[i].state, now, ep);
        smarty_quota_try(items[i].limit, now, amount, ep);

        if (!ep->ok) {
            if (res->refused == 0
                || (worst != SMARTY_QUOTA_NEVER
                    && (ep->retry == SMARTY_QUOTA_NEVER
                        || ep->retry > worst)))
            {
                res->refused = i + 1;
                worst = ep->retry;
            }
        }
    }

    res->retry_ms = worst;

    /* pass 2: spend on all, or on none */

    for (i = 0; i < n; i++) {

        if (i < 2 * SMARTY_QUOTA_MAX_LIMITS) {
            ep = &e[i];

        } else {
            /* more items than the cache of evaluations: read again */
            ep = &one;
            smarty_quota_read(items[i].limit, items[i].state, now, ep);
            smarty_quota_try(items[i].limit, now,
                smarty_quota_amount(items[i].limit, requests, images), ep);
        }

        amount = smarty_quota_amount(items[i].limit, requests, images);

        if (res->refused == 0 && amount > 0) {
            items[i].state->t = ep->t;
            items[i].state->v = ep->nv;
            smarty_quota_measure(&items[i], now, ep->t, ep->nv, ep->te);

        } else {
            smarty_quota_measure(&items[i], now, ep->t, ep->v, ep->te);
        }
    }

    return res->refused == 0;
}


void
smarty_quota_peek(smarty_quota_item_t *items, size_t n, int64_t now)
{
    size_t               i;
    smarty_quota_eval_t  e;

    if (now < 0) {
        now = 0;
    }

    for (i = 0; i < n; i++) {
        smarty_quota_read(items[i].limit, items[i].state, now, &e);
        smarty_quota_measure(&items[i], now, e.t, e.v, e.te);
    }
}


size_t
smarty_quota_refund(smarty_quota_item_t *items, size_t n, int64_t now,
    int64_t at, uint64_t requests, uint64_t images)
{
    size_t                       i, changed;
    int64_t                      w, back;
    uint64_t                     amount;
    smarty_quota_eval_t          e;
    const smarty_quota_limit_t  *l;

    if (now < 0) {
        now = 0;
    }

    if (at < 0) {
        at = 0;
    }

    changed = 0;

    for (i = 0; i < n; i++) {
        l = items[i].limit;
        amount = smarty_quota_amount(l, requests, images);

        smarty_quota_read(l, items[i].state, now, &e);

        if (amount > 0 && e.v > 0) {

            if (l->window == 's') {
                /* a debt is at most 10^12: amount above it clears it */
                back = amount > (uint64_t) e.v / 1000 + 1
                       ? e.v : (int64_t) amount * 1000;
                e.v = e.v > back ? e.v - back : 0;
                items[i].state->t = e.t;
                items[i].state->v = e.v;
                changed++;

            } else {
                w = smarty_quota_window_ms(l->window);

                /* the spend's window, and still the current one */
                if (e.t == at - at % w && items[i].state->t == e.t) {
                    e.v = (uint64_t) e.v > amount
                          ? e.v - (int64_t) amount : 0;
                    items[i].state->v = e.v;
                    changed++;
                }
            }
        }

        smarty_quota_measure(&items[i], now, e.t, e.v, e.te);
    }

    return changed;
}


/* --- headers ------------------------------------------------------------- */

size_t
smarty_quota_pick(const smarty_quota_item_t *items, size_t n,
    size_t refused)
{
    size_t    i, best;
    uint64_t  cap_i, cap_b;

    if (refused > 0 && refused <= n) {
        return refused - 1;
    }

    best = 0;

    for (i = 1; i < n; i++) {
        cap_i = items[i].limit->window == 's' ? items[i].limit->burst
                                              : items[i].limit->count;
        cap_b = items[best].limit->window == 's' ? items[best].limit->burst
                                                 : items[best].limit->count;

        /* remaining_i / cap_i < remaining_b / cap_b; all <= 10^9 */
        if (items[i].remaining * cap_b < items[best].remaining * cap_i) {
            best = i;
        }
    }

    return best;
}


size_t
smarty_quota_policy_header(const smarty_quota_item_t *items, size_t n,
    char *out, size_t size)
{
    int                          r;
    size_t                       i, j, len, listed;
    int64_t                      wi, wj;
    const smarty_quota_limit_t  *l;

    len = 0;
    listed = 0;

    if (out != NULL && size > 0) {
        out[0] = '\0';
    }

    for (i = 0; i < n; i++) {
        l = items[i].limit;
        wi = smarty_quota_window_ms(l->window);

        /*
         * two policies must not share a limit value (draft-07, 2.1): of
         * those that do, only the one with the longest window, the tightest
         * of them, is listed (the first on a tie)
         */

        for (j = 0; j < n; j++) {
            if (j == i || items[j].limit->count != l->count) {
                continue;
            }

            wj = smarty_quota_window_ms(items[j].limit->window);

            if (wj > wi || (wj == wi && j < i)) {
                break;
            }
        }

        if (j < n) {
            continue;
        }

        r = snprintf(len < size ? out + len : NULL,
                     len < size ? size - len : 0,
                     "%s%llu;w=%lld", listed ? ", " : "",
                     (unsigned long long) l->count,
                     (long long) (wi / 1000));
        len += r > 0 ? (size_t) r : 0;
        listed++;

        if (l->window == 's') {
            r = snprintf(len < size ? out + len : NULL,
                         len < size ? size - len : 0,
                         ";burst=%llu", (unsigned long long) l->burst);
            len += r > 0 ? (size_t) r : 0;
        }

        if (l->unit == 'i') {
            r = snprintf(len < size ? out + len : NULL,
                         len < size ? size - len : 0,
                         ";smarty-unit=images");
            len += r > 0 ? (size_t) r : 0;
        }
    }

    if (len >= size && out != NULL && size > 0) {
        out[0] = '\0';              /* all or nothing, as snprintf's size */
    }

    return len;
}


size_t
smarty_quota_ratelimit_header(const smarty_quota_item_t *item, char *out,
    size_t size)
{
    int  r;

    r = snprintf(out, size, "limit=%llu, remaining=%llu, reset=%lld",
                 (unsigned long long) item->limit->count,
                 (unsigned long long) item->remaining,
                 (long long) (item->reset_ms <= 0
                              ? 0 : smarty_quota_ceil_div(item->reset_ms,
                                                          1000)));

    return r > 0 ? (size_t) r : 0;
}


int64_t
smarty_quota_retry_after(int64_t ms)
{
    if (ms == SMARTY_QUOTA_NEVER) {
        return -1;
    }

    if (ms <= 0) {
        return 0;
    }

    return smarty_quota_ceil_div(ms, 1000);
}


size_t
smarty_quota_limit_text(const smarty_quota_limit_t *l, char *out,
    size_t size)
{
    int  r;

    if (l->window == 's' && l->burst != l->count) {
        r = snprintf(out, size, "%llu%c/%c burst=%llu",
                     (unsigned long long) l->count, l->unit, l->window,
                     (unsigned long long) l->burst);

    } else {
        r = snprintf(out, size, "%llu%c/%c", (unsigned long long) l->count,
                     l->unit, l->window);
    }

    return r > 0 ? (size_t) r : 0;
}


const char *
smarty_quota_unit_name(const smarty_quota_limit_t *l)
{
    return l->unit == 'r' ? "requests" : "images";
}


const char *
smarty_quota_window_name(const smarty_quota_limit_t *l)
{
    switch (l->window) {
    case 's':
        return "second";
    case 'm':
        return "minute";
    case 'h':
        return "hour";
    default:
        return "day";
    }
}


size_t
smarty_quota_key(const char *prefix, size_t prefix_len, int space,
    const char *client, size_t client_len, const smarty_quota_limit_t *l,
    char *out, size_t size)
{
    int   r;
    char  tag[4];

    if (space < -1 || space > 9
        || memchr(prefix, '{', prefix_len) || memchr(prefix, '}', prefix_len)
        || (client != NULL
            && (memchr(client, '{', client_len)
                || memchr(client, '}', client_len))))
    {
        return 0;
    }

    if (space < 0) {
        tag[0] = 'd';
        tag[1] = '\0';

    } else {
        tag[0] = 's';
        tag[1] = (char) ('0' + space);
        tag[2] = '\0';
    }

    if (client == NULL) {
        r = snprintf(out, size, "%.*s{%s}:q:s:%c%c", (int) prefix_len,
                     prefix, tag, l->unit, l->window);

    } else {
        r = snprintf(out, size, "%.*s{%s}:q:c:%.*s:%c%c", (int) prefix_len,
                     prefix, tag, (int) client_len, client, l->unit,
                     l->window);
    }

    return r > 0 ? (size_t) r : 0;
}


size_t
smarty_quota_limit_arg(const smarty_quota_limit_t *l, char *out,
    size_t size)
{
    int  r;

    r = snprintf(out, size, "%c%c:%llu:%llu", l->unit, l->window,
                 (unsigned long long) l->count,
                 (unsigned long long) l->burst);

    return r > 0 ? (size_t) r : 0;
}


size_t
smarty_quota_refusal(const smarty_quota_limit_t *l, int space, int client,
    int local, int64_t retry_ms, char *out, size_t size)
{
    int          n;
    char         where[24];
    const char  *whose, *tail;

    if (space < 0) {
        snprintf(where, sizeof(where), "detectors");

    } else {
        snprintf(where, sizeof(where), "space %d", space);
    }

    whose = client ? "the client's" : "the space's";
    tail = local ? " (this gateway's share, while the shared quota store "
                   "is away)" : "";

    if (retry_ms == SMARTY_QUOTA_NEVER) {
        n = snprintf(out, size, "%s: %s limit of %llu %s per %s can never "
                     "admit this request; split it%s", where, whose,
                     (unsigned long long) (l->window == 's' ? l->burst
                                                             : l->count),
                     smarty_quota_unit_name(l),
                     l->window == 's' ? "burst"
                                      : smarty_quota_window_name(l),
                     tail);

    } else {
        n = snprintf(out, size, "%s: %s limit of %llu %s per %s is "
                     "reached; retry in %lld s%s", where, whose,
                     (unsigned long long) l->count, smarty_quota_unit_name(l),
                     smarty_quota_window_name(l),
                     (long long) smarty_quota_retry_after(retry_ms), tail);
    }

    return n < 0 ? 0 : (size_t) n;
}
