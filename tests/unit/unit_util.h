/* Helpers shared by the CUnit suites (header-only, no network). */
#ifndef NATKIT_UNIT_UTIL_H
#define NATKIT_UNIT_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <CUnit/Basic.h>

/* Read VECTORS_DIR/name into buf; returns its length, or 0 (and a CUnit
 * failure) if it cannot. */
static inline size_t unit_load_vector(const char *name, uint8_t *buf, size_t cap)
{
	char path[512];
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", VECTORS_DIR, name);
	f = fopen(path, "rb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	n = fread(buf, 1, cap, f);
	fclose(f);
	CU_ASSERT_FATAL(n > 0 && n < cap);
	return n;
}

struct unit_case {
	const char *name;
	void (*fn)(void);
};

/* Run one suite; exit status non-zero on any failure or CUnit error. */
static inline int unit_run(const char *suite, const struct unit_case *cases)
{
	CU_pSuite s;
	unsigned fails;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite(suite, NULL, NULL);
	if (!s)
		goto err;
	for (; cases->name; cases++)
		if (!CU_add_test(s, cases->name, cases->fn))
			goto err;
	CU_basic_set_mode(CU_BRM_VERBOSE);
	if (CU_basic_run_tests() != CUE_SUCCESS)
		goto err;
	fails = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return fails ? 1 : 0;
err:
	CU_cleanup_registry();
	return 2;
}

#endif
