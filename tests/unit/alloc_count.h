/* Counting malloc/calloc for "allocates nothing" checks: a test executable
 * that includes this interposes glibc's allocator (every caller, shared
 * libraries included) and counts calls while alloc_armed is set. Off under
 * AddressSanitizer, which owns the allocator (ALLOC_COUNTING is then 0 and
 * the checks are skipped). Include from one .c file per executable. */
#ifndef NATKIT_ALLOC_COUNT_H
#define NATKIT_ALLOC_COUNT_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define ALLOC_COUNTING 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ALLOC_COUNTING 0
#endif
#endif
#ifndef ALLOC_COUNTING
#define ALLOC_COUNTING 1
#endif

static int alloc_calls, alloc_armed;

#if ALLOC_COUNTING
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);

void *malloc(size_t n)
{
	alloc_calls += alloc_armed;
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
	alloc_calls += alloc_armed;
	return __libc_calloc(n, size);
}
#endif

#endif
