#include "arena.h"

#include <stdlib.h>
#include <string.h>

size_t lp_arena_round(size_t n)
{
    return (n + LP_ARENA_ALIGN - 1) & ~(size_t)(LP_ARENA_ALIGN - 1);
}

int lp_arena_init(lp_arena *a, size_t size)
{
    a->size = lp_arena_round(size ? size : 1);
    a->used = 0;
    a->base = aligned_alloc(LP_ARENA_ALIGN, a->size);
    if (!a->base) { a->size = 0; return -1; }
    memset(a->base, 0, a->size); /* fault pages in now, not in the first step */
    return 0;
}

void *lp_arena_take(lp_arena *a, size_t n)
{
    size_t need = lp_arena_round(n);
    if (need > a->size - a->used) return NULL;
    void *p = a->base + a->used;
    a->used += need;
    return p;
}

void lp_arena_reset(lp_arena *a) { a->used = 0; }

void lp_arena_free(lp_arena *a)
{
    free(a->base);
    a->base = NULL;
    a->size = a->used = 0;
}
