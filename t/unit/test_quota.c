/*
 * smarty-gateway: unit tests of the quota core (TAP): the policy parser,
 * GCRA and window arithmetic to the millisecond, images and requests,
 * several limits at once (all or nothing), refunds, amounts no limit can
 * admit, a clock going backwards, huge values, keys and headers.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smarty_quota.h"
#include "tap.h"


#define MIN_MS   60000LL
#define DAY_MS   86400000LL
#define T0       1700000000000LL       /* 2023-11-14T22:13:20Z */


/* up to two policies' limits as items with fresh states */

typedef struct {
    smarty_quota_set_t     set[2];
    smarty_quota_state_t   state[2 * SMARTY_QUOTA_MAX_LIMITS];
    smarty_quota_item_t    item[2 * SMARTY_QUOTA_MAX_LIMITS];
    size_t                 n;
} q_t;


static int
q_init(q_t *q, const char *p1, const char *p2)
{
    size_t       i, k;
    char         err[256];
    const char  *p[2];

    memset(q, 0, sizeof(*q));
    p[0] = p1;
    p[1] = p2;

    for (i = 0; i < 2 && p[i] != NULL; i++) {
        if (smarty_quota_parse(p[i], strlen(p[i]), &q->set[i], err,
                               sizeof(err))
            != 0)
        {
            diag("policy \"%s\": %s", p[i], err);
            return -1;
        }

        for (k = 0; k < q->set[i].n; k++) {
            q->item[q->n].limit = &q->set[i].limit[k];
            q->item[q->n].state = &q->state[q->n];
            q->n++;
        }
    }

    return 0;
}


static int
chk(q_t *q, int64_t now, uint64_t req, uint64_t img,
    smarty_quota_result_t *res)
{
    return smarty_quota_check(q->item, q->n, now, req, img, res);
}


/* --- the parser ---------------------------------------------------------- */

static int
parse(const char *s, smarty_quota_set_t *set, char *err, size_t errlen)
{
    return smarty_quota_parse(s, strlen(s), set, err, errlen);
}


static void
test_parse_valid(void)
{
    int                 rc;
    char                err[256], buf[64];
    smarty_quota_set_t  set;

    rc = parse("10r/s", &set, err, sizeof(err));
    is_int(rc, 0, "parse: 10r/s");
    is_int(set.n, 1, "10r/s: one limit");
    ok(set.limit[0].unit == 'r' && set.limit[0].window == 's',
       "10r/s: requests per second");
    is_int(set.limit[0].count, 10, "10r/s: count 10");
    is_int(set.limit[0].burst, 10, "10r/s: the burst defaults to the count");

    rc = parse("10r/s burst=20", &set, err, sizeof(err));
    is_int(rc, 0, "parse: 10r/s burst=20");
    is_int(set.limit[0].burst, 20, "burst=20");

    rc = parse("100i/s burst=200; 1000i/m; 5000r/h; 100000i/d", &set, err,
               sizeof(err));
    is_int(rc, 0, "parse: four limits, ';'-separated");
    is_int(set.n, 4, "four limits");
    ok(set.limit[1].unit == 'i' && set.limit[1].window == 'm'
       && set.limit[1].count == 1000, "1000i/m");
    ok(set.limit[2].unit == 'r' && set.limit[2].window == 'h'
       && set.limit[2].count == 5000, "5000r/h");
    ok(set.limit[3].unit == 'i' && set.limit[3].window == 'd'
       && set.limit[3].count == 100000, "100000i/d");
    is_int(set.limit[1].burst, 1000, "a window's burst is its count");

    rc = parse(" ;\t10r/s \t burst=5 ;;1i/d;  ", &set, err, sizeof(err));
    is_int(rc, 0, "parse: leading, trailing, repeated separators, tabs");
    ok(set.n == 2 && set.limit[0].burst == 5 && set.limit[1].window == 'd',
       "  the two limits");

    rc = parse("1r/s 1i/s 1r/m 1i/m 1r/h 1i/h 1r/d 1i/d", &set, err,
               sizeof(err));
    is_int(rc, 0, "parse: 8 limits, one per unit and window");
    is_int(set.n, 8, "  8 limits");

    rc = parse("1000000000i/d 007r/s burst=1000000000", &set, err,
               sizeof(err));
    is_int(rc, 0, "parse: the largest count, leading zeros");
    ok(set.limit[0].count == 1000000000 && set.limit[1].count == 7
       && set.limit[1].burst == 1000000000, "  their values");

    rc = parse("1r/s burst=1", &set, err, sizeof(err));
    is_int(rc, 0, "parse: a burst below the count is allowed");

    rc = parse("10r/s burst=20 100i/m", &set, NULL, 0);
    is_int(rc, 0, "parse: err may be NULL");

    parse("10r/s burst=20", &set, err, sizeof(err));
    smarty_quota_limit_text(&set.limit[0], buf, sizeof(buf));
    is_str(buf, "10r/s burst=20", "limit_text: with its burst");
    parse("10r/s burst=10; 1000i/m", &set, err, sizeof(err));
    smarty_quota_limit_text(&set.limit[0], buf, sizeof(buf));
    is_str(buf, "10r/s", "limit_text: a burst equal to the count is implied");
    smarty_quota_limit_text(&set.limit[1], buf, sizeof(buf));
    is_str(buf, "1000i/m", "limit_text: a window");
    is_str(smarty_quota_unit_name(&set.limit[1]), "images", "unit name");
    is_str(smarty_quota_window_name(&set.limit[1]), "minute", "window name");
}


static void
bad(const char *policy, const char *want)
{
    int                 rc;
    char                err[256], shown[128];
    size_t              i;
    smarty_quota_set_t  set;

    rc = parse(policy, &set, err, sizeof(err));

    for (i = 0; policy[i] != '\0' && i < sizeof(shown) - 1; i++) {
        shown[i] = (policy[i] >= 0x20 && policy[i] < 0x7f) ? policy[i] : '?';
    }

    shown[i] = '\0';

    if (!ok(rc == -1 && strstr(err, want) != NULL,
            "invalid: \"%s\" -> %s", shown, want))
    {
        diag("  rc %d, error: %s", rc, err);
    }
}


static void
test_parse_invalid(void)
{
    int                 rc;
    char                err[256];
    smarty_quota_set_t  set;

    bad("", "the policy holds no limit");
    bad(" ; \t;", "the policy holds no limit");
    bad("10x/s", "\"10x/s\": the unit must be \"r\" (requests) or \"i\"");
    bad("10r/w", "\"10r/w\": the window must be \"s\", \"m\", \"h\" or \"d\"");
    bad("0r/s", "\"0r/s\": the count must be a number from 1 to 1000000000");
    bad("1000000001r/s", "the count must be a number from 1 to 1000000000");
    bad("99999999999999999999999r/s", "the count must be a number");
    bad("r/s", "\"r/s\": a limit is <count><r|i>/<s|m|h|d>");
    bad("10r", "a limit is <count>");
    bad("10rs", "a limit is <count>");
    bad("10r/ss", "a limit is <count>");
    bad("10r/s,1i/m", "a limit is <count>");
    bad("-10r/s", "a limit is <count>");
    bad("10R/S", "the unit must be");
    bad("10r/s burst=0", "\"burst=0\": the burst must be a number from 1");
    bad("10r/s burst=", "the burst must be a number");
    bad("10r/s burst=abc", "the burst must be a number");
    bad("10r/s burst=1000000001", "the burst must be a number");
    bad("burst=5", "\"burst=5\": a burst must follow a per-second limit");
    bad("1000i/m burst=5", "a burst must follow a per-second limit");
    bad("10r/s; burst=5", "a burst must follow a per-second limit");
    bad("10r/s burst=5 burst=6", "\"burst=6\": the limit already has a burst");
    bad("10r/s 20r/s", "\"20r/s\": a second limit of the same unit and window");
    bad("10r/s 1i/m 5i/m", "a second limit of the same unit and window");
    bad("1r/s 1i/s 1r/m 1i/m 1r/h 1i/h 1r/d 1i/d 2r/s",
        "a second limit");
    bad("1r/s 1i/s 1r/m 1i/m 1r/h 1i/h 1r/d 1i/d 2x/s", "the unit");
    bad("10r/s\n", "a limit is <count>");
    bad("10r/sXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "XXXXXX...\": a limit is");
    bad("1\"r/s", "\"1?r/s\": a limit is");

    /* nine distinct limits cannot exist (4 windows x 2 units): more than
       8 is caught by the duplicate check first; the count check is
       exercised by forging a set already full */
    rc = parse("1r/s 1i/s 1r/m 1i/m 1r/h 1i/h 1r/d 1i/d", &set, err,
               sizeof(err));
    is_int(rc, 0, "eight limits are the most a set can hold");

    rc = smarty_quota_parse("10r/s", 3, &set, err, sizeof(err));
    is_int(rc, -1, "parse: the length is honoured (\"10r\")");

    rc = smarty_quota_parse("10r/s", 5, &set, NULL, 0);
    is_int(rc, 0, "parse: no NUL needed");

    rc = parse("10x/s", &set, err, 8);
    ok(rc == -1 && strlen(err) == 7, "parse: the error fits a small buffer");
}


/* --- GCRA ---------------------------------------------------------------- */

static void
test_gcra(void)
{
    int                    admitted, i, okk;
    int64_t                t, first_ok[16];
    q_t                    q;
    smarty_quota_result_t  res;

    /* 10r/s: ten at once, the eleventh waits exactly 100 ms */
    q_init(&q, "10r/s", NULL);
    admitted = 0;

    for (i = 0; i < 11; i++) {
        admitted += chk(&q, T0, 1, 0, &res);
    }

    is_int(admitted, 10, "gcra 10r/s: 10 of 11 at one instant");
    is_int(res.refused, 1, "  the 11th refused by limit 1");
    is_int(res.retry_ms, 100, "  retry after 100 ms");
    is_int(q.item[0].remaining, 0, "  remaining 0");
    is_int(q.item[0].reset_ms, 1000, "  whole again in 1000 ms");

    okk = chk(&q, T0 + 99, 1, 0, &res);
    ok(!okk && res.retry_ms == 1, "  at +99 ms refused, retry 1 ms");
    okk = chk(&q, T0 + 100, 1, 0, &res);
    ok(okk, "  at +100 ms admitted");
    okk = chk(&q, T0 + 100, 1, 0, &res);
    ok(!okk && res.retry_ms == 100, "  and then refused again for 100 ms");

    /* burst=1: exactly N in any second, requests every millisecond */
    q_init(&q, "10r/s burst=1", NULL);
    admitted = 0;

    for (t = 0; t < 10000; t++) {
        admitted += chk(&q, T0 + t, 1, 0, &res);
    }

    is_int(admitted, 100, "gcra 10r/s burst=1: 100 in 10 s of 1/ms, not 101");

    q_init(&q, "10r/s burst=1", NULL);
    admitted = 0;

    for (t = 0; t < 1000; t++) {
        admitted += chk(&q, T0 + t, 1, 0, &res);
    }

    is_int(admitted, 10, "gcra 10r/s burst=1: exactly 10 in the first 1000 ms");

    /* 3r/s: an interval of 333.3 ms, no drift */
    q_init(&q, "3r/s burst=1", NULL);
    i = 0;

    for (t = 0; t < 3000 && i < 16; t++) {
        if (chk(&q, T0 + t, 1, 0, &res)) {
            first_ok[i++] = t;
        }
    }

    is_int(i, 9, "gcra 3r/s burst=1: 9 in 3000 ms of 1/ms");
    ok(first_ok[1] == 334 && first_ok[2] == 668 && first_ok[8] == 2672,
       "  at 0, 334, 668, ... (a late arrival restarts the interval)");

    /* obeying Retry-After to the ms: one every 1000/3 ms exactly, as
       long as the bucket never fills (burst >= 2 keeps the fractions) */
    q_init(&q, "3r/s burst=3", NULL);
    t = T0;
    admitted = 0;

    while (admitted < 3000) {
        if (chk(&q, t, 1, 0, &res)) {
            admitted++;
            continue;
        }
        t += res.retry_ms;
    }

    is_int(t - T0, 999000, "gcra 3r/s burst=3: 3 + 2997 in 2997000 / 3 ms");
    ok(!chk(&q, t, 1, 0, &res) && res.retry_ms == 334,
       "  no drift: the next one in 334 ms (1000/3 rounded up)");

    /* burst then refill */
    q_init(&q, "10r/s burst=20", NULL);
    admitted = 0;

    for (i = 0; i < 25; i++) {
        admitted += chk(&q, T0, 1, 0, &res);
    }

    is_int(admitted, 20, "gcra 10r/s burst=20: a burst of 20");
    is_int(res.retry_ms, 100, "  then one every 100 ms");
    is_int(q.item[0].reset_ms, 2000, "  whole again in 2 s");
    ok(chk(&q, T0 + 100, 1, 0, &res), "  +100: one");
    ok(!chk(&q, T0 + 100, 1, 0, &res), "  +100: not two");
    ok(chk(&q, T0 + 250, 1, 0, &res), "  +250: one (1.5 refilled, 1 used)");
    ok(!chk(&q, T0 + 250, 1, 0, &res) && res.retry_ms == 50,
       "  +250: then wait 50 ms");
    smarty_quota_peek(q.item, q.n, T0 + 5000);
    is_int(q.item[0].remaining, 20, "  after 5 s idle: 20 again");
    is_int(q.item[0].reset_ms, 0, "  reset 0");
    is_int(q.state[0].t, T0 + 250, "  peek wrote nothing");

    /* a request of several units at once */
    q_init(&q, "100i/s burst=200", NULL);
    ok(chk(&q, T0, 1, 150, &res), "gcra images: 150 of 200");
    ok(!chk(&q, T0, 1, 60, &res), "  60 more refused");
    is_int(res.retry_ms, 100, "  until 10 have refilled: 100 ms");
    is_int(q.item[0].remaining, 50, "  remaining 50");
    ok(chk(&q, T0 + 100, 1, 60, &res), "  60 at +100 ms");
}


/* --- windows ------------------------------------------------------------- */

static void
test_windows(void)
{
    int                    admitted, i;
    int64_t                m0, d0;
    q_t                    q;
    smarty_quota_result_t  res;

    m0 = T0 - T0 % MIN_MS;          /* a minute's start */

    q_init(&q, "5r/m", NULL);
    admitted = 0;

    for (i = 0; i < 7; i++) {
        admitted += chk(&q, m0 + MIN_MS - 10, 1, 0, &res);
    }

    is_int(admitted, 5, "window 5r/m: 5 of 7 in the last 10 ms");
    is_int(res.retry_ms, 10, "  retry when the minute ends, 10 ms");
    is_int(q.item[0].reset_ms, 10, "  reset 10 ms");
    ok(!chk(&q, m0 + MIN_MS - 1, 1, 0, &res) && res.retry_ms == 1,
       "  its last ms: refused, retry 1");

    admitted = 0;

    for (i = 0; i < 7; i++) {
        admitted += chk(&q, m0 + MIN_MS, 1, 0, &res);
    }

    is_int(admitted, 5, "  the next minute's first ms: 5 more");
    is_int(q.item[0].reset_ms, MIN_MS, "  reset a whole minute");
    is_int(q.state[0].t, m0 + MIN_MS, "  the state's window start");

    /* days are UTC days */
    d0 = (T0 / DAY_MS + 1) * DAY_MS;   /* 00:00 UTC */

    q_init(&q, "3i/d", NULL);
    ok(chk(&q, d0 - 1, 1, 3, &res), "window 3i/d: 3 in a day's last ms");
    ok(!chk(&q, d0 - 1, 1, 1, &res) && res.retry_ms == 1,
       "  a 4th waits 1 ms");
    ok(chk(&q, d0, 1, 3, &res), "  at 00:00 UTC: 3 again");
    is_int(q.item[0].reset_ms, DAY_MS, "  reset in 24 h");
    ok(!chk(&q, d0 + DAY_MS - 1, 1, 1, &res)
       && res.retry_ms == 1, "  full until the day's last ms");

    /* hours */
    q_init(&q, "2r/h", NULL);
    chk(&q, T0, 1, 0, &res);
    chk(&q, T0, 1, 0, &res);
    ok(!chk(&q, T0, 1, 0, &res)
       && res.retry_ms == 3600000 - T0 % 3600000, "window 2r/h: until :00");

    /* the clock backwards never reopens a window */
    q_init(&q, "2r/m", NULL);
    chk(&q, m0 + MIN_MS, 1, 0, &res);
    chk(&q, m0 + MIN_MS, 1, 0, &res);
    ok(!chk(&q, m0 + 5, 1, 0, &res),
       "window, clock back a minute: still the later window, refused");
    is_int(res.retry_ms, 2 * MIN_MS - 5, "  until that window ends");
    ok(chk(&q, m0 + 2 * MIN_MS, 1, 0, &res), "  its successor admits");
}


/* --- several limits at once ---------------------------------------------- */

static void
test_multi(void)
{
    int                    admitted, i;
    q_t                    q;
    smarty_quota_result_t  res;

    /* images and requests */
    q_init(&q, "2r/s; 10i/s", NULL);
    ok(chk(&q, T0, 1, 6, &res), "r+i: 1 request of 6 images");
    ok(!chk(&q, T0, 1, 6, &res), "  another of 6 refused");
    is_int(res.refused, 2, "  by the images limit");
    is_int(q.item[0].remaining, 1, "  the request was not spent");
    is_int(q.item[1].remaining, 4, "  nor the images");
    ok(chk(&q, T0, 1, 4, &res), "  4 images fit");
    ok(!chk(&q, T0, 1, 0, &res) && res.refused == 1,
       "  then the requests limit refuses");

    q_init(&q, "5r/s; 1i/s", NULL);
    ok(chk(&q, T0, 1, 1, &res), "an image limit spent");
    ok(chk(&q, T0, 1, 0, &res), "  a call without images still passes");
    is_int(q.item[1].remaining, 0, "  and spends no image");

    /* the space's set and the client's set */
    q_init(&q, "100i/m", "10i/m");
    ok(chk(&q, T0, 1, 10, &res), "space+client: 10 images");
    ok(!chk(&q, T0, 1, 1, &res), "  the client's budget is spent");
    is_int(res.refused, 2, "  refused by item 2, the client's");
    is_int(q.item[0].remaining, 90, "  the space spent nothing more");

    q_init(&q, "10r/s burst=1; 100i/m", "1r/m");
    chk(&q, T0, 1, 1, &res);
    ok(!chk(&q, T0, 1, 1, &res), "longest wait: refused");
    is_int(res.refused, 3, "  by the client's minute (not the 100 ms GCRA)");
    is_int(res.retry_ms, MIN_MS - T0 % MIN_MS, "  with its wait");

    /* never admissible wins over any wait */
    q_init(&q, "1r/m", "5i/s");
    chk(&q, T0, 1, 0, &res);
    ok(!chk(&q, T0, 1, 6, &res), "6 images on a burst of 5");
    ok(res.refused == 2 && res.retry_ms == SMARTY_QUOTA_NEVER,
       "  never admissible, whatever else waits");

    /* all or nothing across both sets, over a long run */
    q_init(&q, "50i/m; 5r/s burst=5", "30i/m");
    admitted = 0;

    for (i = 0; i < 40; i++) {
        admitted += chk(&q, T0 - T0 % MIN_MS + i * 200, 1, 4, &res);
    }

    is_int(admitted, 7, "space+client: 7 requests of 4 images fit 30");
    is_int(q.state[0].v, 28, "  the space spent exactly what was admitted");
    is_int(q.state[2].v, 28, "  the client too");
}


/* --- refunds ------------------------------------------------------------- */

static void
test_refund(void)
{
    size_t                 n;
    int64_t                m0;
    q_t                    q;
    smarty_quota_result_t  res;

    m0 = T0 - T0 % MIN_MS;

    q_init(&q, "100i/m; 10r/s", NULL);
    chk(&q, m0 + 10, 1, 40, &res);
    is_int(q.item[0].remaining, 60, "refund: 40 images spent");
    n = smarty_quota_refund(q.item, q.n, m0 + 20, res.now, 0, 40);
    is_int(n, 1, "  one state changed (the images)");
    is_int(q.item[0].remaining, 100, "  40 images given back");
    is_int(q.item[1].remaining, 9, "  the request stays spent");

    chk(&q, m0 + 30, 1, 40, &res);
    n = smarty_quota_refund(q.item, q.n, m0 + 40, res.now, 0, 400);
    is_int(q.item[0].remaining, 100, "  never below zero");

    chk(&q, m0 + 50, 1, 40, &res);
    chk(&q, m0 + MIN_MS, 1, 5, &res);
    n = smarty_quota_refund(q.item, q.n, m0 + MIN_MS + 1, m0 + 50, 0, 40);
    is_int(n, 0, "  a window rolled over is not refunded");
    is_int(q.item[0].remaining, 95, "  the new window keeps its 5");

    q_init(&q, "100i/m", NULL);
    chk(&q, m0 + 50, 1, 40, &res);
    n = smarty_quota_refund(q.item, q.n, m0 + MIN_MS + 1, m0 + 50, 0, 40);
    is_int(n, 0, "  not even when nothing spent in the new one yet");

    q_init(&q, "10i/s", NULL);
    chk(&q, T0, 1, 10, &res);
    n = smarty_quota_refund(q.item, q.n, T0, T0, 0, 10);
    ok(n == 1 && q.item[0].remaining == 10, "refund gcra: the bucket is whole");
    chk(&q, T0, 1, 10, &res);
    n = smarty_quota_refund(q.item, q.n, T0 + 500, T0, 0, 100);
    ok(q.item[0].remaining == 10 && q.state[0].v == 0,
       "  never beyond the bucket");
    chk(&q, T0 + 500, 1, 10, &res);
    smarty_quota_refund(q.item, q.n, T0 + 700, T0 + 500, 0, 3);
    is_int(q.item[0].remaining, 5, "  partly drained (2) and 3 back: 5");
    n = smarty_quota_refund(q.item, q.n, T0 + 700, T0 + 500, 0,
                            UINT64_MAX);
    ok(n == 1 && q.state[0].v == 0, "  a huge refund clears the debt");

    q_init(&q, "10r/s", NULL);
    n = smarty_quota_refund(q.item, q.n, T0, T0, 1, 0);
    ok(n == 0 && q.state[0].t == 0, "refund on a fresh state: nothing");
}


/* --- edges --------------------------------------------------------------- */

static void
test_edges(void)
{
    q_t                    q;
    smarty_quota_result_t  res;

    q_init(&q, "100i/s burst=200; 1000i/m", NULL);
    ok(!chk(&q, T0, 1, 201, &res), "201 images on a burst of 200: refused");
    is_int(res.retry_ms, SMARTY_QUOTA_NEVER, "  never admissible");
    is_int(res.refused, 1, "  by the burst");
    is_int(q.state[0].t, 0, "  nothing written");
    ok(chk(&q, T0, 1, 200, &res), "200 fit");

    q_init(&q, "1000i/m", NULL);
    ok(!chk(&q, T0, 1, 1001, &res) && res.retry_ms == SMARTY_QUOTA_NEVER,
       "1001 images on 1000 a minute: never");
    ok(!chk(&q, T0, 1, UINT64_MAX, &res)
       && res.retry_ms == SMARTY_QUOTA_NEVER, "UINT64_MAX images: never");
    q_init(&q, "1000i/s", NULL);
    ok(!chk(&q, T0, UINT64_MAX, UINT64_MAX, &res)
       && res.retry_ms == SMARTY_QUOTA_NEVER, "  on a GCRA too");

    /* clock backwards on a GCRA: no refill until it is back */
    q_init(&q, "1r/s burst=1", NULL);
    ok(chk(&q, 10000000, 1, 0, &res), "gcra, clock back: admitted at 10000 s");
    ok(!chk(&q, 5000000, 1, 0, &res), "  at 5000 s refused");
    is_int(res.retry_ms, 5000000 + 1000, "  until the clock is back + 1 s");
    is_int(q.state[0].t, 10000000, "  the state stays");
    ok(chk(&q, 10001000, 1, 0, &res), "  admitted at 10001 s");

    /* huge values */
    q_init(&q, "1000000000r/s burst=1000000000; 1000000000i/d", NULL);
    ok(chk(&q, 253402300799999LL, 1000000000, 1000000000, &res),
       "10^9 at once in the year 9999");
    is_int(q.item[0].reset_ms, 1000, "  drained in 1 s");
    ok(!chk(&q, 253402300799999LL, 1, 0, &res) && res.retry_ms == 1,
       "  one more waits 1 ms");
    ok(chk(&q, 253402300800000LL, 1, 0, &res), "  then passes");

    q_init(&q, "1r/s burst=1000000000", NULL);
    chk(&q, 1000, 1000000000, 0, &res);
    is_int(q.item[0].reset_ms, 1000000000000LL,
           "1r/s burst=10^9: a debt of 10^12, 31 years to drain");
    ok(chk(&q, 1000 + 1000, 1, 0, &res), "  one second later, one more");

    q_init(&q, "5r/m", NULL);
    ok(chk(&q, -5, 1, 0, &res) && res.now == 0, "a negative clock is 0");
    ok(chk(&q, 0, 0, 0, &res), "zero of everything passes");
    is_int(q.item[0].remaining, 4, "  and spends nothing");

    q.state[0].v = -7;
    smarty_quota_peek(q.item, q.n, 0);
    is_int(q.item[0].remaining, 5, "a negative count reads as 0");
}


/* --- keys and headers ---------------------------------------------------- */

static void
test_headers(void)
{
    char                   buf[256];
    size_t                 len, i;
    q_t                    q;
    smarty_quota_result_t  res;

    q_init(&q, "10r/s burst=20; 1000i/m; 100000i/d", NULL);

    len = smarty_quota_policy_header(q.item, q.n, buf, sizeof(buf));
    is_str(buf, "10;w=1;burst=20, 1000;w=60;smarty-unit=images, "
           "100000;w=86400;smarty-unit=images", "RateLimit-Policy");
    is_int(len, strlen(buf), "  its length");
    is_int(smarty_quota_policy_header(q.item, q.n, NULL, 0), len,
           "  measured without a buffer");
    len = smarty_quota_policy_header(q.item, q.n, buf, 10);
    ok(len == strlen("10;w=1;burst=20, 1000;w=60;smarty-unit=images, "
                     "100000;w=86400;smarty-unit=images")
       && buf[0] == '\0', "  too small a buffer: nothing written");

    {
        q_t  d;

        q_init(&d, "5r/s; 5r/m; 7i/m; 5i/h; 7r/d", NULL);
        (void) smarty_quota_policy_header(d.item, d.n, buf, sizeof(buf));
        is_str(buf, "5;w=3600;smarty-unit=images, 7;w=86400",
               "RateLimit-Policy: one policy per limit value, the longest "
               "window");

        q_init(&d, "5r/m; 5i/m", NULL);
        (void) smarty_quota_policy_header(d.item, d.n, buf, sizeof(buf));
        is_str(buf, "5;w=60", "  the first on a tie");
    }

    chk(&q, T0 - T0 % MIN_MS + 30000, 1, 40, &res);
    i = smarty_quota_pick(q.item, q.n, res.refused);
    is_int(i, 0, "pick: 19/20 on the GCRA is closer than 960/1000");
    chk(&q, T0 - T0 % MIN_MS + 30000, 0, 60, &res);
    i = smarty_quota_pick(q.item, q.n, res.refused);
    is_int(i, 1, "pick: 900/1000 is closer than 19/20");
    smarty_quota_ratelimit_header(&q.item[i], buf, sizeof(buf));
    is_str(buf, "limit=1000, remaining=900, reset=30", "RateLimit");

    smarty_quota_ratelimit_header(&q.item[0], buf, sizeof(buf));
    is_str(buf, "limit=10, remaining=19, reset=1",
           "RateLimit of a GCRA: reset rounded up (100 ms)");

    for (i = 0; i < 20; i++) {
        chk(&q, T0 - T0 % MIN_MS + 30000, 1, 0, &res);
    }

    is_int(res.refused, 1, "refused by the GCRA");
    is_int(smarty_quota_pick(q.item, q.n, res.refused), 0,
           "pick: the refusing limit");
    is_int(smarty_quota_retry_after(res.retry_ms), 1,
           "Retry-After: 100 ms is 1 s");

    is_int(smarty_quota_retry_after(0), 0, "Retry-After(0) 0");
    is_int(smarty_quota_retry_after(1), 1, "Retry-After(1) 1");
    is_int(smarty_quota_retry_after(1000), 1, "Retry-After(1000) 1");
    is_int(smarty_quota_retry_after(1001), 2, "Retry-After(1001) 2");
    is_int(smarty_quota_retry_after(SMARTY_QUOTA_NEVER), -1,
           "Retry-After(never) -1: none");

    len = smarty_quota_key("smarty:", 7, 1, NULL, 0, &q.set[0].limit[0],
                           buf, sizeof(buf));
    is_str(buf, "smarty:{s1}:q:s:rs", "key: the space's");
    is_int(len, 18, "  its length");
    smarty_quota_key("smarty:", 7, 1, "frontdesk", 9, &q.set[0].limit[2],
                     buf, sizeof(buf));
    is_str(buf, "smarty:{s1}:q:c:frontdesk:id", "key: a client's");
    smarty_quota_key("p:", 2, -1, "a:b", 3, &q.set[0].limit[1], buf,
                     sizeof(buf));
    is_str(buf, "p:{d}:q:c:a:b:im", "key: detectors, a client with ':'");
    is_int(smarty_quota_key("{x}", 3, 1, NULL, 0, &q.set[0].limit[0], buf,
                            sizeof(buf)), 0, "key: a '{' in the prefix");
    is_int(smarty_quota_key("p", 1, 1, "c}", 2, &q.set[0].limit[0], buf,
                            sizeof(buf)), 0, "key: a '}' in the client");
    is_int(smarty_quota_key("p", 1, 10, NULL, 0, &q.set[0].limit[0], buf,
                            sizeof(buf)), 0, "key: space 10");

    smarty_quota_limit_arg(&q.set[0].limit[0], buf, sizeof(buf));
    is_str(buf, "rs:10:20", "limit_arg: a GCRA");
    smarty_quota_limit_arg(&q.set[0].limit[1], buf, sizeof(buf));
    is_str(buf, "im:1000:1000", "limit_arg: a window");
}


static void
test_sets(void)
{
    char                      err[160];
    smarty_quota_set_t        a, b, c, d;
    smarty_quota_sets_t       sets;
    const smarty_quota_set_t *got;

    memset(&sets, 0, sizeof(sets));

    is_int(smarty_quota_slot("7", 1), 7, "slot of \"7\"");
    is_int(smarty_quota_slot("*", 1), SMARTY_QUOTA_ANY, "slot of \"*\"");
    is_int(smarty_quota_slot("detectors", 9), SMARTY_QUOTA_DETECTORS,
           "slot of \"detectors\"");
    is_int(smarty_quota_slot("10", 2), -1, "\"10\" is no slot");

    is_int(smarty_quota_sets_add(&sets, &a, "*", 1, "5r/s", 4, err,
                                 sizeof(err)), 0, "sets: \"*\" added");
    is_int(smarty_quota_sets_add(&sets, &b, "1", 1, "10i/m", 5, err,
                                 sizeof(err)), 0, "sets: \"1\" added");
    is_int(smarty_quota_sets_add(&sets, &c, "1", 1, "1r/s", 4, err,
                                 sizeof(err)), -1, "sets: \"1\" twice");
    ok(strstr(err, "a second policy for space \"1\"") != NULL,
       "... says so: %s", err);
    is_int(smarty_quota_sets_add(&sets, &d, "x", 1, "1r/s", 4, err,
                                 sizeof(err)), -1, "sets: \"x\"");
    ok(strstr(err, "\"x\" is not a space") != NULL, "... says so: %s", err);
    is_int(smarty_quota_sets_add(&sets, &d, "2", 1, "1x/s", 4, err,
                                 sizeof(err)), -1, "sets: a bad policy");
    ok(sets.set[2] == NULL, "... leaves the slot empty");

    got = smarty_quota_sets_get(&sets, 1);
    ok(got == &b, "space 1: its own set");
    got = smarty_quota_sets_get(&sets, 3);
    ok(got == &a, "space 3: \"*\"'s set");
    ok(smarty_quota_sets_get(&sets, SMARTY_QUOTA_DETECTORS) == NULL,
       "detectors: \"*\" does not apply");
    ok(smarty_quota_sets_get(NULL, 1) == NULL, "no sets: NULL");
}


int
main(void)
{
    test_parse_valid();
    test_parse_invalid();
    test_gcra();
    test_windows();
    test_multi();
    test_refund();
    test_edges();
    test_headers();
    test_sets();

    return done_testing();
}
