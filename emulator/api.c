/*
 * smarty-emulator: POST /api/v1/<group>/<method>.
 *
 * In order: count, remember the request for /_emulator/last, check the
 * method (405) and the token (401), count as authorised, inject reset and
 * hang, find the method (404), parse the body (400, 413), sleep the
 * latency, inject 5xx, run the method, answer.
 */

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"


typedef struct {
    const char     *path;
    emu_method_pt   handler;
} emu_method_t;


static const emu_method_t  emu_methods[] = {
    { "persons/set",        emu_persons_set },
    { "persons/recognize",  emu_persons_recognize },
    { "persons/delete",     emu_persons_delete },
    { "persons/truncate",   emu_persons_truncate },
    { "objects/detect",     emu_objects_detect },
    { "docs/detect",        emu_docs_detect },
    { "docs/recognize",     emu_docs_recognize },
    { "text/recognize",     emu_text_recognize },
    { "adult/detect",       emu_adult_detect },
    { NULL, NULL }
};


static enum MHD_Result
emu_header_cb(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
    json_t      *headers, *old;
    char        *name, *joined;
    size_t       i, n;

    headers = cls;

    n = strlen(key);
    name = malloc(n + 1);
    if (name == NULL) {
        return MHD_YES;
    }

    for (i = 0; i <= n; i++) {
        name[i] = (char) tolower((unsigned char) key[i]);
    }

    value = value ? value : "";
    old = json_object_get(headers, name);

    if (json_is_string(old)) {
        joined = malloc(json_string_length(old) + strlen(value) + 3);
        if (joined != NULL) {
            strcpy(joined, json_string_value(old));
            strcat(joined, ", ");
            strcat(joined, value);
            json_object_set_new(headers, name, json_string(joined));
            free(joined);
        }

    } else {
        json_object_set_new(headers, name, json_string(value));
    }

    free(name);

    return MHD_YES;
}


static void
emu_remember(struct MHD_Connection *c, emu_req_t *r, const char *path)
{
    json_t      *last, *headers;
    const char  *q, *ct;

    headers = json_object();
    MHD_get_connection_values(c, MHD_HEADER_KIND, emu_header_cb, headers);

    q = strchr(r->uri, '?');
    ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                     MHD_HTTP_HEADER_CONTENT_TYPE);

    last = json_pack("{s:s,s:s,s:s,s:o,s:s,s:I,s:s?}",
                     "method", r->method,
                     "path", path,
                     "query", q ? q + 1 : "",
                     "headers", headers,
                     "body_sha256", r->body_sha256,
                     "body_length", (json_int_t) r->body_len,
                     "content_type", ct);

    emu_last_set(last);
}


static enum MHD_Result
emu_api_call(struct MHD_Connection *c, emu_req_t *r, const char *path,
    const emu_knobs_t *knobs)
{
    const emu_method_t  *m;
    const emu_part_t    *meta, *p;
    emu_parts_t          parts;
    emu_call_t           call;
    emu_err_t            err;
    json_t              *body;
    json_error_t         jerr;
    size_t               i, nimages;
    long                 ms;
    const char          *ct;

    for (m = emu_methods; m->path; m++) {
        if (strcmp(m->path, path) == 0) {
            break;
        }
    }

    if (m->path == NULL) {
        emu_err_set(&err, 404, "unknown_endpoint", "no such API method");
        return emu_send_error(c, r, &err);
    }

    if (r->body_overflow) {
        emu_err_set(&err, 413, "body_too_large",
                    "the request body is larger than %ld bytes",
                    emu_conf.max_body_bytes);
        return emu_send_error(c, r, &err);
    }

    ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                     MHD_HTTP_HEADER_CONTENT_TYPE);

    if (emu_multipart_parse(ct, r->body ? r->body : (unsigned char *) "",
                            r->body_stored, &parts, &err) != 0)
    {
        return emu_send_error(c, r, &err);
    }

    memset(&call, 0, sizeof(emu_call_t));
    nimages = 0;
    meta = NULL;

    for (i = 0; i < parts.nparts; i++) {
        p = &parts.parts[i];

        if (strcmp(p->name, "meta") == 0) {
            if (meta == NULL) {
                meta = p;
            }
            continue;
        }

        nimages++;

        if (p->len > (size_t) emu_conf.max_image_bytes) {
            emu_err_set(&err, 413, "image_too_large",
                        "an image is larger than %ld bytes",
                        emu_conf.max_image_bytes);
            goto failed;
        }
    }

    if (nimages > (size_t) emu_conf.max_images) {
        emu_err_set(&err, 413, "too_many_images",
                    "the request has %zu images, at most %ld are allowed",
                    nimages, emu_conf.max_images);
        goto failed;
    }

    if (meta == NULL) {
        emu_err_set(&err, 400, "missing_meta",
                    "the request has no \"meta\" part");
        goto failed;
    }

    call.meta = json_loadb((const char *) meta->data, meta->len, 0, &jerr);

    if (!json_is_object(call.meta)) {
        emu_err_set(&err, 400, "bad_meta", "\"meta\" is not a JSON object");
        goto failed;
    }

    ms = knobs->latency_ms + knobs->per_image_ms * (long) nimages;

    if (emu_wait(c, ms) != 0) {
        emu_log("%s %s: the client left during the latency", r->method,
                r->path);
        json_decref(call.meta);
        emu_parts_free(&parts);
        return MHD_NO;
    }

    if (emu_chance(knobs->fail_5xx)) {
        emu_stats_fault("fail_5xx");

        if (emu_chance(0.5)) {
            emu_err_set(&err, 503, "service_unavailable",
                        "the recognition service is unavailable (injected)");

        } else {
            emu_err_set(&err, 500, "internal_error",
                        "the recognition service failed (injected)");
        }

        goto failed;
    }

    call.path = path;
    call.parts = &parts;
    call.temp_error = knobs->temp_error;
    call.aliases_changed = knobs->aliases_changed;

    body = m->handler(&call);

    emu_stats_images(call.images);

    if (body == NULL) {
        err = call.err;
        goto failed;
    }

    json_decref(call.meta);
    emu_parts_free(&parts);

    return emu_send_envelope(c, r, 200, body);

failed:

    json_decref(call.meta);
    emu_parts_free(&parts);

    return emu_send_error(c, r, &err);
}


enum MHD_Result
emu_api_handle(struct MHD_Connection *c, emu_req_t *r)
{
    const char   *path, *provider, *token;
    emu_err_t     err;
    emu_knobs_t   knobs;

    path = r->path + sizeof("/api/v1/") - 1;

    emu_stats_request_total();
    emu_remember(c, r, path);

    if (strcmp(r->method, MHD_HTTP_METHOD_POST) != 0) {
        emu_err_set(&err, 405, "method_not_allowed",
                    "the API takes POST requests only");
        return emu_send_error(c, r, &err);
    }

    provider = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
                                           "oauth_provider");
    token = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
                                        "oauth_token");

    if (provider == NULL || provider[0] == '\0'
        || token == NULL || token[0] == '\0')
    {
        emu_err_set(&err, 401, "missing_oauth",
                    "oauth_provider and oauth_token are required in the "
                    "query string");
        return emu_send_error(c, r, &err);
    }

    if (!emu_token_valid(token)) {
        emu_err_set(&err, 401, "invalid_token",
                    "the oauth_token is not valid or has expired");
        return emu_send_error(c, r, &err);
    }

    emu_stats_request(path);
    emu_knobs_get(&knobs);

    if (emu_chance(knobs.reset)) {
        emu_stats_fault("reset");
        emu_log("%s %s reset (injected)", r->method, r->path);
        emu_reset_connection(c);
        return MHD_NO;
    }

    if (emu_chance(knobs.hang)) {
        emu_stats_fault("hang");
        emu_log("%s %s hangs (injected)", r->method, r->path);
        emu_wait(c, emu_conf.hang_max_s * 1000);
        emu_log("%s %s hang over after %ld ms", r->method, r->path,
                (long) (emu_now_ms() - r->start_ms));
        return MHD_NO;
    }

    return emu_api_call(c, r, path, &knobs);
}
