/* pool: fixed-size objects from one block sized at start. Objects are
 * handed out lazily (a page is touched only when an object on it is first
 * used, so an idle pool costs no resident memory) and recycled through a
 * free list threaded through their first bytes. pool_get() returns zeroed
 * memory. No allocation after pool_init(). */
#ifndef STUND_POOL_H
#define STUND_POOL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct pool {
	uint8_t *mem;
	size_t stride;
	uint32_t cap, fresh; /* objects [fresh, cap) were never handed out */
	void *free;
};

static inline int pool_init(struct pool *p, uint32_t cap, size_t size)
{
	p->stride = (size + 15) & ~(size_t)15;
	p->cap = cap;
	p->fresh = 0;
	p->free = NULL;
	p->mem = calloc(cap ? cap : 1, p->stride);
	return p->mem ? 0 : -ENOMEM;
}

static inline void pool_destroy(struct pool *p)
{
	free(p->mem);
	p->mem = NULL;
}

static inline bool pool_full(const struct pool *p)
{
	return !p->free && p->fresh >= p->cap;
}

static inline void *pool_get(struct pool *p)
{
	void *o = p->free;

	if (o) {
		memcpy(&p->free, o, sizeof(void *));
		memset(o, 0, p->stride);
		return o;
	}
	if (p->fresh >= p->cap)
		return NULL;
	return p->mem + (size_t)p->fresh++ * p->stride; /* zero from calloc */
}

static inline void pool_put(struct pool *p, void *o)
{
	memcpy(o, &p->free, sizeof(void *));
	p->free = o;
}

#endif
