/*
 * smarty-gateway: quotas, the pure part.
 *
 * Pure C, no nginx types, no allocation.  This core parses quota
 * policies, does the arithmetic of every limit (deterministic given the
 * clock and the state), builds the Redis keys and arguments of
 * src/lua/quota.lua (which implements the SAME arithmetic, so that
 * Redis and the local fallback agree; t/70-quota-script.t checks both on
 * the same random sequences) and formats the answer's headers.
 *
 *
 * Policies
 * --------
 *
 * A policy is a set of at most SMARTY_QUOTA_MAX_LIMITS limits, separated
 * by white space and/or ';':
 *
 *   policy  = *sep item *( 1*sep item ) *sep
 *   item    = count unit "/" window [ 1*WSP "burst=" count ]
 *   sep     = SP / HTAB / ";"
 *   count   = 1*DIGIT               1 .. SMARTY_QUOTA_MAX_COUNT
 *   unit    = "r"                   requests
 *           / "i"                   images (a recognize of 40 photos
 *                                   spends 40; a call without images 0)
 *   window  = "s" / "m" / "h" / "d" second, minute, hour, day
 *
 * Examples:
 *
 *   "10r/s"                   10 requests a second, bursts of 10
 *   "10r/s burst=20"          10 requests a second, bursts of 20
 *   "100i/s burst=200; 1000i/m; 5000r/h; 100000i/d"
 *
 * "burst=" belongs to the per-second limit just before it (white space
 * between them, no ';') and only a per-second limit may have one.  A set
 * holds at most one limit per unit and window ("10r/s 20r/s" is an
 * error).  Errors are one sentence naming the offending token, for
 * nginx -t.
 *
 *
 * Per-second limits: GCRA
 * -----------------------
 *
 * "Nr/s burst=B" (B defaults to N) is the generic cell rate algorithm:
 * one unit costs the emission interval T = 1000/N ms, and a request of a
 * units is admitted when the theoretical arrival time after it,
 * max(TAT, now) + a*T, is at most now + B*T.  From rest, B units pass at
 * once, then N a second.
 *
 * T is not an integer number of ms (N = 3), and an absolute TAT in
 * 1/N ms would overflow, so the TAT is kept exactly as the pair
 *
 *   t   the clock (ms) when the state was written,
 *   v   the debt at t, TAT - t, in units of T/1000 ("milli-units"): one
 *       unit costs 1000, the debt drains N per ms, and is at most 1000*B.
 *
 * Every quantity is an integer below 2^53 (counts are at most 10^9, so
 * debts at most 10^12): exact in C and in Redis's Lua (doubles).
 *
 * Per-minute, -hour, -day limits: fixed windows
 * ---------------------------------------------
 *
 * "Ni/m", "Nr/h", "Ni/d" are budgets over windows aligned to the clock
 * (UTC: a day starts at 00:00:00 UTC, a minute at :00).  State: t, the
 * window's start (ms); v, the units spent in it.  Chosen over sliding
 * windows because a fixed window is exact with one counter (a sliding
 * log costs memory per request, a sliding counter only approximates),
 * its reset is a fact the headers can state ("the budget comes back at
 * 00:00 UTC"), and a refund knows whether the window it refers to is
 * still the current one.  The price, up to 2N across a boundary, is
 * bounded by the per-second limit, which should come with such budgets.
 *
 * The clock
 * ---------
 *
 * now is in ms since the epoch.  A clock that goes backwards never
 * admits more: a GCRA state is read at max(now, t) (no refill until the
 * clock is back), a window never goes back to an earlier window.
 *
 * All-or-nothing
 * --------------
 *
 * smarty_quota_check() takes every limit that applies to a request (the
 * space's set and the client's set, flattened into items) and admits the
 * request only if every one of them has room; then it spends on all,
 * else on none.  A limit whose amount is 0 (an images limit and a call
 * without images) is neither checked nor written.
 *
 * A refusal names the item that refused: the one with the longest wait
 * (the first of them on a tie; an amount no limit can ever admit, a > B
 * or a > N, wins with a wait of -1, "never").  Waiting retry_ms is enough
 * for every limit if nothing else spends meanwhile.
 */

#ifndef SMARTY_QUOTA_H
#define SMARTY_QUOTA_H

#include <stddef.h>
#include <stdint.h>


#define SMARTY_QUOTA_MAX_LIMITS   8             /* per set */
#define SMARTY_QUOTA_MAX_COUNT    1000000000    /* counts and bursts */

/* how long a Redis key outlives the moment its state stops mattering */
#define SMARTY_QUOTA_SLACK_MS     60000

/* a wait that no wait ends: the amount exceeds a limit's capacity */
#define SMARTY_QUOTA_NEVER        (-1)


typedef struct {
    unsigned char  unit;        /* 'r' requests, 'i' images */
    unsigned char  window;      /* 's' (GCRA), 'm', 'h', 'd' */
    uint64_t       count;       /* units per window (per second for 's') */
    uint64_t       burst;       /* 's': the bucket's size, B; else count */
} smarty_quota_limit_t;


typedef struct {
    size_t                n;
    smarty_quota_limit_t  limit[SMARTY_QUOTA_MAX_LIMITS];
} smarty_quota_set_t;


/*
 * One limit's state.  {0, 0} is a fresh state (an absent Redis key).
 *   's':           t = the clock when written, v = the debt (milli-units)
 *   'm', 'h', 'd': t = the window's start,     v = the units spent in it
 */
typedef struct {
    int64_t  t;
    int64_t  v;
} smarty_quota_state_t;


/*
 * One limit that applies to a request, with its state; remaining and
 * reset_ms are outputs of check, peek (and refund):
 *   remaining  units that could still be spent now (after this spend);
 *   reset_ms   ms until the limit is whole again: the window's end, or
 *              until the GCRA debt has drained.
 */
typedef struct {
    const smarty_quota_limit_t  *limit;
    smarty_quota_state_t        *state;
    uint64_t                     remaining;
    int64_t                      reset_ms;
} smarty_quota_item_t;


typedef struct {
    size_t   refused;           /* 0: admitted; else 1 + the item's index */
    int64_t  retry_ms;          /* 0 when admitted; SMARTY_QUOTA_NEVER */
    int64_t  now;               /* the clock the decision used */
} smarty_quota_result_t;


/*
 * Parse a policy of len bytes (NUL not needed) into set.  Returns 0, or
 * -1 with a sentence in err (errlen bytes; err may be NULL when errlen is
 * 0) naming the offending token, e.g.
 *
 *   "1000x/m": the unit must be "r" (requests) or "i" (images)
 *   "burst=20": a burst must follow a per-second limit, as in "10r/s
 *       burst=20"
 *
 * An empty policy (only separators) is an error: say "off" in the
 * directive instead.
 */
int smarty_quota_parse(const char *s, size_t len, smarty_quota_set_t *set,
    char *err, size_t errlen);


/*
 * Sets by space, as the directives and the clients file give them: one
 * slot per space "0".."9", one for the stateless detectors, one for "*"
 * (every space "0".."9" without a set of its own).
 */

#define SMARTY_QUOTA_DETECTORS  10
#define SMARTY_QUOTA_ANY        11
#define SMARTY_QUOTA_SLOTS      12

typedef struct {
    smarty_quota_set_t  *set[SMARTY_QUOTA_SLOTS];
} smarty_quota_sets_t;


/*
 * A share of a limit, "N/M" or a decimal fraction with at most 6 digits
 * after the point ("0.25"), more than 0 and at most 1: 0 with *num and
 * *den set (den at most 1000000), or -1.
 */
int smarty_quota_share_parse(const char *s, size_t len, uint64_t *num,
    uint64_t *den);


/* the slot of "0".."9", "detectors" or "*" (len bytes), or -1 */
int smarty_quota_slot(const char *space, size_t len);

/*
 * Parses policy into storage and puts it in the slot of space: 0, or -1
 * with a sentence in err when space is not one, the slot has a set
 * already, or the policy does not parse (smarty_quota_parse).
 */
int smarty_quota_sets_add(smarty_quota_sets_t *sets,
    smarty_quota_set_t *storage, const char *space, size_t slen,
    const char *policy, size_t plen, char *err, size_t errlen);

/*
 * The set that applies to slot (a space "0".."9" without its own has
 * "*"'s), or NULL; sets may be NULL.
 */
const smarty_quota_set_t *smarty_quota_sets_get(
    const smarty_quota_sets_t *sets, int slot);


/* a window's length in ms ('s' 1000, 'm' 60000, 'h' 3600000, 'd' 864e5) */
int64_t smarty_quota_window_ms(unsigned char window);


/*
 * Check and spend: requests units on the 'r' limits, images on the 'i'
 * limits of the n items, all or nothing (see above).  Fills every item's
 * remaining and reset_ms (after the spend when admitted, as they are when
 * refused) and *res.  Returns 1 admitted, 0 refused.  Items must not
 * share a state.  Any n works; up to 2 * SMARTY_QUOTA_MAX_LIMITS items
 * (a space's set and a client's) are evaluated once, more twice.
 */
int smarty_quota_check(smarty_quota_item_t *items, size_t n, int64_t now,
    uint64_t requests, uint64_t images, smarty_quota_result_t *res);


/* remaining and reset_ms of every item at now, nothing spent or written */
void smarty_quota_peek(smarty_quota_item_t *items, size_t n, int64_t now);


/*
 * Give back what a request spent (images of a failed upstream call;
 * requests too if the caller wants): at is the clock its check used
 * (res.now, or the script's answer).  A GCRA debt is lowered, never below
 * 0 (a full bucket); a window's count is lowered, never below 0, only if
 * the window the spend went to is still the current one.  Fills
 * remaining and reset_ms.  Returns how many states changed.
 */
size_t smarty_quota_refund(smarty_quota_item_t *items, size_t n,
    int64_t now, int64_t at, uint64_t requests, uint64_t images);


/*
 * Which item the RateLimit field should describe: the refused one if
 * refused (1-based, as smarty_quota_result_t.refused), else the one
 * closest to exhaustion (the lowest remaining/limit; the first on a tie).
 * Returns an index into items (0 when n is 0).
 */
size_t smarty_quota_pick(const smarty_quota_item_t *items, size_t n,
    size_t refused);


/*
 * Headers, per draft-ietf-httpapi-ratelimit-headers-07 (June 2023):
 *
 *   RateLimit-Policy: 10;w=1;burst=20, 1000;w=60;smarty-unit=images
 *   RateLimit: limit=10, remaining=3, reset=1
 *
 * RateLimit-Policy lists every item: quota ";w=" window in seconds; a
 * per-second limit adds its burst and an images limit
 * ";smarty-unit=images" as extension parameters (the draft: "other
 * parameters are allowed and can be regarded as comments").  Two
 * policies must not share a limit value: of items that do, only the one
 * with the longest window is listed.  RateLimit describes one item (see
 * smarty_quota_pick): its limit, remaining and reset in seconds, rounded
 * up.  A GCRA's remaining may exceed its limit (up to the burst).
 *
 * Both are snprintf-like: they return the value's length, and write it
 * NUL-terminated when it fits in size bytes (out may be NULL when size is
 * 0, to measure).
 */
size_t smarty_quota_policy_header(const smarty_quota_item_t *items,
    size_t n, char *out, size_t size);

size_t smarty_quota_ratelimit_header(const smarty_quota_item_t *item,
    char *out, size_t size);


/*
 * Retry-After (delay-seconds) for a wait of ms: rounded up (1 ms is 1 s,
 * 0 is 0); -1 for SMARTY_QUOTA_NEVER (send no Retry-After: waiting
 * cannot help).
 */
int64_t smarty_quota_retry_after(int64_t ms);


/*
 * A limit in the policy syntax, canonical ("10r/s burst=20", "1000i/m";
 * the burst only when it differs from the count), snprintf-like.
 */
size_t smarty_quota_limit_text(const smarty_quota_limit_t *l, char *out,
    size_t size);


/*
 * The sentence of a refusal by limit l, snprintf-like into out (size
 * bytes): "space 1: the client's limit of 5 requests per minute is
 * reached; retry in 12 s", or, when retry_ms is SMARTY_QUOTA_NEVER, that
 * the limit can never admit the request ("split it").  space -1: the
 * detectors; client: the client's limit, else the space's; local: the
 * limit is this gateway's share, Redis being away.
 */
size_t smarty_quota_refusal(const smarty_quota_limit_t *l, int space,
    int client, int local, int64_t retry_ms, char *out, size_t size);


/* "requests" or "images"; "second", "minute", "hour" or "day" */
const char *smarty_quota_unit_name(const smarty_quota_limit_t *l);
const char *smarty_quota_window_name(const smarty_quota_limit_t *l);


/*
 * The Redis key of a limit's state (see src/lua/quota.lua):
 *
 *   <prefix>{s<space>}:q:s:<unit><window>              the space's set
 *   <prefix>{s<space>}:q:c:<client>:<unit><window>     a client's set
 *
 * space 0..9, or -1 for "{d}" (the stateless detectors, as the cache);
 * client NULL for the space's set.  The limit's parameters are not in the
 * key: a state stays valid when they change (a debt in milli-units and a
 * count of units mean the same under another N), so a reload keeps what
 * was spent.  snprintf-like; returns 0 (writing nothing) when space is
 * out of range or the prefix or client holds '{' or '}'.
 */
size_t smarty_quota_key(const char *prefix, size_t prefix_len, int space,
    const char *client, size_t client_len, const smarty_quota_limit_t *l,
    char *out, size_t size);


/*
 * A limit as src/lua/quota.lua takes it in ARGV: "<unit><window>:<count>:
 * <burst>", e.g. "rs:10:20", "im:1000:1000".  snprintf-like.
 */
size_t smarty_quota_limit_arg(const smarty_quota_limit_t *l, char *out,
    size_t size);

#endif /* SMARTY_QUOTA_H */
