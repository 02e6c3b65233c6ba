/* conf_line: tokenise one line of a "key = value" text file (stund.conf,
 * userdb, natclient's settings file): comments, blank lines, a bare key
 * (flag) or a key and its value. Pure: works in place, allocates nothing. */
#ifndef NATPROTO_CONF_LINE_H
#define NATPROTO_CONF_LINE_H

#include <stddef.h>

enum conf_line_kind {
	CONF_LINE_BLANK = 0,	/* empty or only a comment */
	CONF_LINE_KEY,		/* a bare key (a flag), or the whole line unsplit */
	CONF_LINE_PAIR,		/* a key and a value (the value may be "") */
};

/* Where '#' starts a comment. Always: as the first non-blank character. */
#define CONF_LINE_HASH_WORD 0x01u /* also after a blank ("pw#1" is kept) */
#define CONF_LINE_HASH_ANY  0x02u /* anywhere */
/* How a key meets its value. Default: "key", "key value", "key=value",
 * "key = value" (the key ends at '=' or a blank). */
#define CONF_LINE_EQ_ONLY   0x04u /* only '=' separates; the key may hold blanks */
#define CONF_LINE_WHOLE     0x08u /* no split: the trimmed line is the key */
#define CONF_LINE_UNQUOTE   0x10u /* strip one pair of matching '' or "" from a value */

struct conf_line {
	char *key;	/* NUL-terminated, inside the line */
	char *value;	/* NULL unless CONF_LINE_PAIR */
};

/* Strip leading and trailing whitespace in place; returns the new start. */
char *conf_line_trim(char *s);

/* Tokenise line (modified in place) under flags; returns its kind and
 * fills *out (key and value point into line). */
enum conf_line_kind conf_line_split(char *line, unsigned flags, struct conf_line *out);

#endif
