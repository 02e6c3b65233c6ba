/* CUnit: proto/conf_line (tokenising "key = value" lines in place). */
#include "conf_line.h"
#include "unit_util.h"

#include <string.h>

static enum conf_line_kind split(char *buf, size_t cap, const char *in, unsigned flags,
				 struct conf_line *t)
{
	snprintf(buf, cap, "%s", in);
	return conf_line_split(buf, flags, t);
}

static void test_trim(void)
{
	char buf[32] = " \t a b \r\n";

	CU_ASSERT_STRING_EQUAL(conf_line_trim(buf), "a b");
	strcpy(buf, "   ");
	CU_ASSERT_STRING_EQUAL(conf_line_trim(buf), "");
}

static void test_blank_and_comments(void)
{
	char b[64];
	struct conf_line t;

	CU_ASSERT_EQUAL(split(b, sizeof(b), "", 0, &t), CONF_LINE_BLANK);
	CU_ASSERT_EQUAL(split(b, sizeof(b), "  \n", 0, &t), CONF_LINE_BLANK);
	CU_ASSERT_EQUAL(split(b, sizeof(b), "  # note", 0, &t), CONF_LINE_BLANK);
	CU_ASSERT_PTR_NULL(t.key);
	/* only leading '#' by default: the rest of the line is content */
	CU_ASSERT_EQUAL(split(b, sizeof(b), "alice:pw #1", CONF_LINE_WHOLE, &t), CONF_LINE_KEY);
	CU_ASSERT_STRING_EQUAL(t.key, "alice:pw #1");
	/* HASH_WORD: after a blank only */
	CU_ASSERT_EQUAL(split(b, sizeof(b), "password = a#b # note", CONF_LINE_HASH_WORD, &t),
			CONF_LINE_PAIR);
	CU_ASSERT_STRING_EQUAL(t.value, "a#b");
	/* HASH_ANY: anywhere */
	CU_ASSERT_EQUAL(split(b, sizeof(b), "password = a#b", CONF_LINE_HASH_ANY, &t),
			CONF_LINE_PAIR);
	CU_ASSERT_STRING_EQUAL(t.value, "a");
}

static void test_word_split(void)
{
	static const char *const forms[] = { "realm = x y", "realm=x y", "realm x y",
					     " realm\t=\tx y ", "realm =x y" };
	char b[64];
	struct conf_line t;

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		CU_ASSERT_EQUAL(split(b, sizeof(b), forms[i], 0, &t), CONF_LINE_PAIR);
		CU_ASSERT_STRING_EQUAL(t.key, "realm");
		CU_ASSERT_STRING_EQUAL(t.value, "x y");
	}
	CU_ASSERT_EQUAL(split(b, sizeof(b), "no-auth", 0, &t), CONF_LINE_KEY);
	CU_ASSERT_STRING_EQUAL(t.key, "no-auth");
	CU_ASSERT_PTR_NULL(t.value);
	CU_ASSERT_EQUAL(split(b, sizeof(b), "realm =", 0, &t), CONF_LINE_PAIR);
	CU_ASSERT_STRING_EQUAL(t.value, "");
	/* one '=' is the separator, a second belongs to the value */
	CU_ASSERT_EQUAL(split(b, sizeof(b), "k==v", 0, &t), CONF_LINE_PAIR);
	CU_ASSERT_STRING_EQUAL(t.value, "=v");
}

static void test_eq_split(void)
{
	char b[64];
	struct conf_line t;

	CU_ASSERT_EQUAL(split(b, sizeof(b), " my key = v w ", CONF_LINE_EQ_ONLY, &t),
			CONF_LINE_PAIR);
	CU_ASSERT_STRING_EQUAL(t.key, "my key");
	CU_ASSERT_STRING_EQUAL(t.value, "v w");
	CU_ASSERT_EQUAL(split(b, sizeof(b), "server 1.2.3.4", CONF_LINE_EQ_ONLY, &t),
			CONF_LINE_KEY);
	CU_ASSERT_STRING_EQUAL(t.key, "server 1.2.3.4");
}

static void test_unquote(void)
{
	char b[64];
	struct conf_line t;

	split(b, sizeof(b), "realm = \"a b\"", CONF_LINE_UNQUOTE, &t);
	CU_ASSERT_STRING_EQUAL(t.value, "a b");
	split(b, sizeof(b), "realm = 'x'", CONF_LINE_UNQUOTE, &t);
	CU_ASSERT_STRING_EQUAL(t.value, "x");
	split(b, sizeof(b), "realm = \"x'", CONF_LINE_UNQUOTE, &t);
	CU_ASSERT_STRING_EQUAL(t.value, "\"x'");
	split(b, sizeof(b), "realm = \"x\"", 0, &t);
	CU_ASSERT_STRING_EQUAL(t.value, "\"x\"");
}

static const struct unit_case cases[] = {
	{ "trim", test_trim },
	{ "blank lines and comment rules", test_blank_and_comments },
	{ "key [=] value split", test_word_split },
	{ "key = value split on '=' only", test_eq_split },
	{ "unquote values", test_unquote },
	{ NULL, NULL },
};

int main(void)
{
	return unit_run("conf_line", cases);
}
