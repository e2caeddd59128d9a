/* arena.h - one block of memory carved into aligned buffers.
 *
 * The graph plans every activation, gradient and scratch buffer of a step once
 * per batch size, allocates one arena of the total, and hands out views: the
 * training step itself never calls malloc (page faults cost ~11 us here).
 */
#ifndef LP_ARENA_H
#define LP_ARENA_H

#include <stddef.h>

#define LP_ARENA_ALIGN 64

typedef struct lp_arena {
    unsigned char *base;
    size_t size;   /* bytes reserved */
    size_t used;   /* bytes handed out */
} lp_arena;

/* Round n up to the arena alignment (what a request of n bytes really takes). */
size_t lp_arena_round(size_t n);

/* Reserve size bytes (aligned, touched once so pages are resident). 0 on success, -1 on OOM. */
int lp_arena_init(lp_arena *a, size_t size);

/* Next aligned view of n bytes; NULL if the plan under-counted (a programmer error). */
void *lp_arena_take(lp_arena *a, size_t n);

/* Hand everything back without freeing. */
void lp_arena_reset(lp_arena *a);

void lp_arena_free(lp_arena *a);

#endif
