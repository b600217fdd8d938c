/*
 * smarty-gateway: a ring of variable-sized records in one block of memory
 * (pure C, no nginx types).  The audit keeps the records Redis has not
 * taken yet in one, in shared memory (docs/audit.md, "When Redis is
 * away"); the caller locks.
 *
 * Records are appended at the tail and taken from the head, in order; a
 * record is contiguous (a record that would straddle the end of the block
 * starts again at its beginning).  A mark divides the records from the
 * head: those before it were already counted as kept back ("buffered").
 */

#ifndef SMARTY_RING_H
#define SMARTY_RING_H

#include <stddef.h>
#include <stdint.h>


typedef struct {
    uint64_t        size;       /* bytes of data[], a multiple of 8 */
    uint64_t        head;       /* positions: ever-growing byte counts, */
    uint64_t        tail;       /* data[pos % size] */
    uint64_t        mark;       /* head <= mark <= tail, on a record */
    uint64_t        count;      /* records in the ring */
    uint64_t        marked;     /* of which before the mark */
    unsigned char   data[];
} smarty_ring_t;


/* a ring in mem (size bytes), or NULL when size is too small */
smarty_ring_t *smarty_ring_init(void *mem, size_t size);

/* the longest record a ring of this size can ever hold */
size_t smarty_ring_max(const smarty_ring_t *r);

/* appends len bytes at p: 0, or -1 when there is no room (nothing done) */
int smarty_ring_push(smarty_ring_t *r, const void *p, size_t len);

/*
 * The record at *pos (start at r->head): 0 with *p and *len set and *pos
 * moved to the next one; -1 past the last record.
 */
int smarty_ring_next(const smarty_ring_t *r, uint64_t *pos,
    const unsigned char **p, size_t *len);

/* takes n records (at most those there are) from the head */
void smarty_ring_pop(smarty_ring_t *r, uint64_t n);

/*
 * Moves the mark past the first n records from the head (n = (uint64_t)
 * -1: all of them); returns how many records it newly passed.
 */
uint64_t smarty_ring_mark(smarty_ring_t *r, uint64_t n);

/* bytes in use, headers and the wasted ends included */
uint64_t smarty_ring_used(const smarty_ring_t *r);

#endif /* SMARTY_RING_H */
