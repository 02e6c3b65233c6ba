/* conf_line: "key = value / bare flag / # comment" lines (see conf_line.h). */
#include "conf_line.h"

#include <ctype.h>
#include <string.h>

char *conf_line_trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

static void strip_comment(char *s, unsigned flags)
{
	for (char *p = s; *p; p++) {
		if (*p != '#')
			continue;
		if ((flags & CONF_LINE_HASH_ANY) ||
		    ((flags & CONF_LINE_HASH_WORD) &&
		     (p == s || isspace((unsigned char)p[-1])))) {
			*p = 0;
			return;
		}
	}
}

static void unquote(char **v)
{
	size_t n = strlen(*v);

	if (n >= 2 && (**v == '"' || **v == '\'') && (*v)[n - 1] == **v) {
		(*v)[n - 1] = 0;
		(*v)++;
	}
}

/* "key=value" with the key ending at the first '=' (blanks allowed). */
static enum conf_line_kind split_eq(char *s, struct conf_line *out)
{
	char *eq = strchr(s, '=');

	out->key = s;
	if (!eq)
		return CONF_LINE_KEY;
	*eq = 0;
	out->key = conf_line_trim(s);
	out->value = conf_line_trim(eq + 1);
	return CONF_LINE_PAIR;
}

/* "key", "key value", "key=value", "key = value". */
static enum conf_line_kind split_word(char *s, struct conf_line *out)
{
	size_t klen = strcspn(s, "= \t");
	char sep = s[klen];
	char *v;

	out->key = s;
	if (!sep)
		return CONF_LINE_KEY;
	s[klen] = 0;
	v = s + klen + 1;
	if (sep != '=') {
		v += strspn(v, " \t");
		if (*v == '=')
			v++;
	}
	out->value = conf_line_trim(v);
	return CONF_LINE_PAIR;
}

enum conf_line_kind conf_line_split(char *line, unsigned flags, struct conf_line *out)
{
	enum conf_line_kind kind;
	char *s;

	out->key = NULL;
	out->value = NULL;
	strip_comment(line, flags);
	s = conf_line_trim(line);
	if (!*s || *s == '#')
		return CONF_LINE_BLANK;
	if (flags & CONF_LINE_WHOLE) {
		out->key = s;
		return CONF_LINE_KEY;
	}
	kind = (flags & CONF_LINE_EQ_ONLY) ? split_eq(s, out) : split_word(s, out);
	if (kind == CONF_LINE_PAIR && (flags & CONF_LINE_UNQUOTE))
		unquote(&out->value);
	return kind;
}
