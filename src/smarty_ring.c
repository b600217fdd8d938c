/*
 * smarty-gateway: a ring of variable-sized records (see smarty_ring.h).
 *
 * Each record is an 8-byte header (its length, 32 bits, and 32 bits of
 * zero) and its bytes, padded to 8.  When a record does not fit between
 * the tail and the end of the block, a header whose length is SKIP fills
 * the rest and the record starts at the block's beginning; the rest of the
 * block is always a multiple of 8, so there is room for that header.
 */

#include <string.h>

#include "smarty_ring.h"


#define SMARTY_RING_HDR   8
#define SMARTY_RING_SKIP  0xffffffffu
#define SMARTY_RING_ALIGN(n)  (((n) + 7) & ~(uint64_t) 7)


static uint32_t smarty_ring_hdr(const smarty_ring_t *r, uint64_t pos);
static void smarty_ring_set_hdr(smarty_ring_t *r, uint64_t pos,
    uint32_t len);
static uint64_t smarty_ring_skip(const smarty_ring_t *r, uint64_t pos);


smarty_ring_t *
smarty_ring_init(void *mem, size_t size)
{
    smarty_ring_t  *r;

    if (mem == NULL || size < sizeof(smarty_ring_t) + 64) {
        return NULL;
    }

    r = mem;
    memset(r, 0, sizeof(smarty_ring_t));
    r->size = (size - sizeof(smarty_ring_t)) & ~(uint64_t) 7;

    return r;
}


size_t
smarty_ring_max(const smarty_ring_t *r)
{
    /* a record and the skip before it must fit beside nothing else */
    return r->size / 2 - SMARTY_RING_HDR;
}


int
smarty_ring_push(smarty_ring_t *r, const void *p, size_t len)
{
    uint64_t  need, off, room, pad;

    if (len > smarty_ring_max(r)) {
        return -1;
    }

    need = SMARTY_RING_HDR + SMARTY_RING_ALIGN(len);
    off = r->tail % r->size;
    room = r->size - off;
    pad = (room < need) ? room : 0;

    if (r->tail - r->head + pad + need > r->size) {
        return -1;
    }

    if (pad) {
        smarty_ring_set_hdr(r, r->tail, SMARTY_RING_SKIP);
        r->tail += pad;
        off = 0;
    }

    smarty_ring_set_hdr(r, r->tail, (uint32_t) len);
    memcpy(r->data + off + SMARTY_RING_HDR, p, len);
    r->tail += need;
    r->count++;

    return 0;
}


int
smarty_ring_next(const smarty_ring_t *r, uint64_t *pos,
    const unsigned char **p, size_t *len)
{
    uint64_t  at;
    uint32_t  n;

    at = smarty_ring_skip(r, *pos);

    if (at >= r->tail) {
        return -1;
    }

    n = smarty_ring_hdr(r, at);

    *p = r->data + at % r->size + SMARTY_RING_HDR;
    *len = n;
    *pos = at + SMARTY_RING_HDR + SMARTY_RING_ALIGN(n);

    return 0;
}


void
smarty_ring_pop(smarty_ring_t *r, uint64_t n)
{
    uint64_t  at;

    while (n-- && r->count) {
        at = smarty_ring_skip(r, r->head);
        r->head = at + SMARTY_RING_HDR
                  + SMARTY_RING_ALIGN(smarty_ring_hdr(r, at));
        r->count--;

        if (r->marked) {
            r->marked--;
        }
    }

    if (r->count == 0) {
        /* empty: start again at the block's beginning */
        r->head = r->tail = r->mark = 0;
        r->marked = 0;
        return;
    }

    if (r->mark < r->head) {
        r->mark = r->head;
    }
}


uint64_t
smarty_ring_mark(smarty_ring_t *r, uint64_t n)
{
    uint64_t  i, at;

    /* the mark never goes past the first n records from the head */

    if (n < r->marked) {
        return 0;
    }

    n -= r->marked;

    for (i = 0; i < n && r->marked < r->count; i++) {
        at = smarty_ring_skip(r, r->mark);
        r->mark = at + SMARTY_RING_HDR
                  + SMARTY_RING_ALIGN(smarty_ring_hdr(r, at));
        r->marked++;
    }

    return i;
}


uint64_t
smarty_ring_used(const smarty_ring_t *r)
{
    return r->tail - r->head;
}


/* --- headers ------------------------------------------------------------- */


static uint32_t
smarty_ring_hdr(const smarty_ring_t *r, uint64_t pos)
{
    uint32_t  n;

    memcpy(&n, r->data + pos % r->size, sizeof(uint32_t));

    return n;
}


static void
smarty_ring_set_hdr(smarty_ring_t *r, uint64_t pos, uint32_t len)
{
    unsigned char  *h;

    h = r->data + pos % r->size;
    memcpy(h, &len, sizeof(uint32_t));
    memset(h + sizeof(uint32_t), 0, SMARTY_RING_HDR - sizeof(uint32_t));
}


/* pos, or past the skip header there */

static uint64_t
smarty_ring_skip(const smarty_ring_t *r, uint64_t pos)
{
    if (pos < r->tail && smarty_ring_hdr(r, pos) == SMARTY_RING_SKIP) {
        return pos + (r->size - pos % r->size);
    }

    return pos;
}
