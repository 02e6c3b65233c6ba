/* pool.h: fixed-size objects handed out lazily, recycled, zeroed. */
#include <CUnit/Basic.h>
#include <string.h>

#include "pool.h"

struct obj {
	void *link;
	char data[40];
};

static void test_get_put(void)
{
	struct pool p;
	struct obj *a, *b, *c;

	CU_ASSERT_EQUAL_FATAL(pool_init(&p, 2, sizeof(struct obj)), 0);
	CU_ASSERT_EQUAL(p.stride % 16, 0);
	CU_ASSERT_EQUAL(p.fresh, 0); /* nothing handed out, nothing touched */
	a = pool_get(&p);
	b = pool_get(&p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT(a != b);
	CU_ASSERT(pool_full(&p));
	CU_ASSERT_PTR_NULL(pool_get(&p));
	memset(a, 0xAB, sizeof(*a));
	pool_put(&p, a);
	CU_ASSERT(!pool_full(&p));
	c = pool_get(&p);
	CU_ASSERT_PTR_EQUAL(c, a); /* recycled */
	for (size_t i = 0; i < sizeof(*c); i++)
		CU_ASSERT_EQUAL(((unsigned char *)c)[i], 0); /* and zeroed */
	pool_destroy(&p);
}

int main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("pool", NULL, NULL);
	CU_add_test(s, "get, full, put, recycle zeroed", test_get_put);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
