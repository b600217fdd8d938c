/*
 * smarty-gateway: libFuzzer target for smarty_mp_boundary().
 *
 * The input is a Content-Type value.  Checked: the answer is 0,
 * SMARTY_MP_ERR_TYPE or SMARTY_MP_ERR_BOUNDARY; a boundary found is 1 to 70
 * RFC 2046 bchars, not ending in a space, NUL-terminated, never written
 * past out; the parser accepts it: "--boundary--" parses to DONE, and a
 * one-part body to one part.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smarty_multipart.h"


#define fz_assert(c)                                                          \
    if (!(c)) {                                                               \
        fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c);               \
        abort();                                                              \
    }


static int
fz_begin(void *ud, smarty_mp_part_t *part)
{
    (*(int *) ud)++;
    return 0;
}


static const smarty_mp_callbacks_t  fz_cb = { fz_begin, NULL, NULL };


int
LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    int           rc, nparts;
    char         *ctype, *out, body[512];
    size_t        len, i, n;
    smarty_mp_t  *mp;

    /* exact-size copies, so that ASan sees any overread or overflow */
    ctype = malloc(size ? size : 1);
    memcpy(ctype, in, size);
    out = malloc(SMARTY_MP_BOUNDARY_MAX + 1);

    len = 12345;
    rc = smarty_mp_boundary(ctype, size, out, &len);

    fz_assert(rc == 0 || rc == SMARTY_MP_ERR_TYPE
              || rc == SMARTY_MP_ERR_BOUNDARY);

    if (rc == 0) {
        fz_assert(len >= 1 && len <= SMARTY_MP_BOUNDARY_MAX);
        fz_assert(out[len] == '\0');
        fz_assert(strlen(out) == len);
        fz_assert(out[len - 1] != ' ');

        for (i = 0; i < len; i++) {
            fz_assert(strchr("0123456789abcdefghijklmnopqrstuvwxyz"
                             "ABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? ",
                             out[i]) != NULL);
        }

        mp = malloc(sizeof(smarty_mp_t));

        smarty_mp_init(mp, out, len, NULL, NULL);
        n = snprintf(body, sizeof(body), "--%s--", out);
        fz_assert(smarty_mp_feed(mp, (unsigned char *) body, n)
                  == SMARTY_MP_DONE);

        nparts = 0;
        smarty_mp_init(mp, out, len, &fz_cb, &nparts);
        n = snprintf(body, sizeof(body), "--%s\r\nContent-Disposition: "
                     "form-data; name=a\r\n\r\n--%s\r\n--%s--", out, out,
                     out);
        fz_assert(smarty_mp_feed(mp, (unsigned char *) body, n)
                  == SMARTY_MP_DONE);
        fz_assert(nparts == 1);

        free(mp);
    }

    free(out);
    free(ctype);

    return 0;
}
