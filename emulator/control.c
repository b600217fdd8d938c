/*
 * smarty-emulator: /_emulator/, the endpoints of tests (no token):
 *
 *   GET  /_emulator/stats    counters
 *   GET  /_emulator/last     the last request to /api/v1/
 *   POST /_emulator/faults?fail_5xx=P&temp_error=P&hang=P&reset=P
 *                         &aliases_changed=P&latency_ms=N&per_image_ms=N
 *                         &token_fail=P&token_hang=P&token_latency_ms=N
 *                            changes the knobs given; answers all of them
 *   GET  /_emulator/faults   the knobs
 *   POST /_emulator/reset[?tokens=1]
 *                            forgets spaces, counters, the last request
 *                            (and the issued tokens)
 *   POST /_emulator/tokens/revoke
 *                            revokes every issued token
 */

#include <stdlib.h>
#include <string.h>

#include "emu.h"


static json_t *
emu_knobs_json(const emu_knobs_t *k)
{
    return json_pack("{s:f,s:f,s:f,s:f,s:f,s:I,s:I,s:f,s:f,s:I}",
                     "fail_5xx", k->fail_5xx,
                     "temp_error", k->temp_error,
                     "hang", k->hang,
                     "reset", k->reset,
                     "aliases_changed", k->aliases_changed,
                     "latency_ms", (json_int_t) k->latency_ms,
                     "per_image_ms", (json_int_t) k->per_image_ms,
                     "token_fail", k->token_fail,
                     "token_hang", k->token_hang,
                     "token_latency_ms", (json_int_t) k->token_latency_ms);
}


static enum MHD_Result
emu_faults(struct MHD_Connection *c, emu_req_t *r)
{
    static const char  *probs[] = { "fail_5xx", "temp_error", "hang",
                                    "reset", "aliases_changed",
                                    "token_fail", "token_hang" };
    static const char  *times[] = { "latency_ms", "per_image_ms",
                                    "token_latency_ms" };
    emu_knobs_t         k;
    emu_err_t           err;
    const char         *v;
    double             *pp[7];
    long               *tp[3];
    size_t              i;

    emu_knobs_get(&k);

    if (strcmp(r->method, MHD_HTTP_METHOD_POST) == 0) {
        pp[0] = &k.fail_5xx;
        pp[1] = &k.temp_error;
        pp[2] = &k.hang;
        pp[3] = &k.reset;
        pp[4] = &k.aliases_changed;
        pp[5] = &k.token_fail;
        pp[6] = &k.token_hang;
        tp[0] = &k.latency_ms;
        tp[1] = &k.per_image_ms;
        tp[2] = &k.token_latency_ms;

        for (i = 0; i < 7; i++) {
            v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
                                            probs[i]);
            if (v != NULL && emu_parse_prob(v, pp[i]) != 0) {
                emu_err_set(&err, 400, "bad_fault",
                            "%s must be a number from 0 to 1", probs[i]);
                return emu_send_error(c, r, &err);
            }
        }

        for (i = 0; i < 3; i++) {
            v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
                                            times[i]);
            if (v != NULL && emu_parse_long(v, 0, 3600000, tp[i]) != 0) {
                emu_err_set(&err, 400, "bad_fault",
                            "%s must be an integer from 0 to 3600000",
                            times[i]);
                return emu_send_error(c, r, &err);
            }
        }

        emu_knobs_set(&k);
        emu_log("faults: fail_5xx=%g temp_error=%g hang=%g reset=%g "
                "latency_ms=%ld per_image_ms=%ld token_fail=%g "
                "token_hang=%g token_latency_ms=%ld", k.fail_5xx,
                k.temp_error, k.hang, k.reset, k.latency_ms, k.per_image_ms,
                k.token_fail, k.token_hang, k.token_latency_ms);
    }

    return emu_send_json(c, r, 200, emu_knobs_json(&k));
}


enum MHD_Result
emu_control_handle(struct MHD_Connection *c, emu_req_t *r)
{
    const char         *what, *v;
    emu_err_t           err;
    int                 get, post;
    size_t              n;
    emu_token_stats_t   ts;

    what = r->path + sizeof("/_emulator/") - 1;
    get = strcmp(r->method, MHD_HTTP_METHOD_GET) == 0;
    post = strcmp(r->method, MHD_HTTP_METHOD_POST) == 0;

    if (strcmp(what, "stats") == 0 && get) {
        emu_tokens_stats(&ts);
        return emu_send_json(c, r, 200, emu_stats_json(&ts));
    }

    if (strcmp(what, "last") == 0 && get) {
        return emu_send_json(c, r, 200, emu_last_get());
    }

    if (strcmp(what, "faults") == 0 && (get || post)) {
        return emu_faults(c, r);
    }

    if (strcmp(what, "reset") == 0 && post) {
        emu_persons_reset();
        emu_stats_clear();

        v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "tokens");
        if (v != NULL && strcmp(v, "1") == 0) {
            (void) emu_tokens_revoke();
        }

        emu_tokens_stats_reset();

        emu_log("reset%s", (v && strcmp(v, "1") == 0) ? " (and tokens)" : "");

        return emu_send_json(c, r, 200, json_pack("{s:b}", "reset", 1));
    }

    if (strcmp(what, "tokens/revoke") == 0 && post) {
        n = emu_tokens_revoke();
        emu_log("tokens revoked: %zu", n);

        return emu_send_json(c, r, 200,
                             json_pack("{s:I}", "revoked", (json_int_t) n));
    }

    if (strcmp(what, "stats") == 0 || strcmp(what, "last") == 0
        || strcmp(what, "faults") == 0 || strcmp(what, "reset") == 0
        || strcmp(what, "tokens/revoke") == 0)
    {
        emu_err_set(&err, 405, "method_not_allowed",
                    "wrong HTTP method for /_emulator/%s", what);
        return emu_send_error(c, r, &err);
    }

    emu_err_set(&err, 404, "unknown_endpoint", "no such emulator endpoint");
    return emu_send_error(c, r, &err);
}
