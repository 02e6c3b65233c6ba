/* settings: server and credentials (see settings.h). */
#include "settings.h"
#include "conf_line.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <unistd.h>

static void set_if_empty(char *dst, size_t cap, const char *v)
{
	if (!dst[0] && v)
		snprintf(dst, cap, "%s", v);
}

/* "1.5" -> 1500; 0.05 to 600 s. */
#define SECONDS_MIN 0.05
#define SECONDS_MAX 600
/* RFC 7675 s5.1: consent checks go every 4 to 6 s, each sent once: a
 * shorter timeout expires before the first answer can come. */
#define CONSENT_TIMEOUT_MIN 8.0

static double seconds_min(const char *key)
{
	return !strcmp(key, "consent-timeout") ? CONSENT_TIMEOUT_MIN : SECONDS_MIN;
}

static int parse_seconds_ms(const char *key, const char *val, unsigned *out)
{
	char *end;
	double v = strtod(val, &end);

	if (end == val || *end || v < seconds_min(key) || v > SECONDS_MAX)
		return -ERANGE;
	*out = (unsigned)(v * 1000.0 + 0.5);
	return 0;
}

static int parse_count(const char *val, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(val, &end, 10);
	if (errno || end == val || *end || v < 1 || v > SETTINGS_MAX_SESSIONS)
		return -EDOM;
	*out = (unsigned)v;
	return 0;
}

static int apply_key(struct settings *s, const char *key, const char *val)
{
	if (!strcmp(key, "server"))
		set_if_empty(s->server, sizeof(s->server), val);
	else if (!strcmp(key, "user") || !strcmp(key, "username"))
		set_if_empty(s->user, sizeof(s->user), val);
	else if (!strcmp(key, "password"))
		set_if_empty(s->password, sizeof(s->password), val);
	else if (!strcmp(key, "ca"))
		set_if_empty(s->ca, sizeof(s->ca), val);
	else if (!strcmp(key, "relay-fallback"))
		return parse_seconds_ms(key, val, &s->relay_fallback_ms);
	else if (!strcmp(key, "consent-timeout")) /* RFC 7675 s5.1: 30 s */
		return parse_seconds_ms(key, val, &s->consent_timeout_ms);
	else if (!strcmp(key, "max-sessions"))
		return parse_count(val, &s->max_sessions);
	else
		return -EINVAL;
	return 0;
}

static int parse_line(struct settings *s, char *line, const char *path, int lineno,
		      char *err, size_t cap)
{
	struct conf_line t;
	enum conf_line_kind kind = conf_line_split(line, CONF_LINE_HASH_ANY | CONF_LINE_EQ_ONLY, &t);
	const char *key = t.key, *val = t.value;

	if (kind == CONF_LINE_BLANK)
		return 0;
	if (kind != CONF_LINE_PAIR) {
		snprintf(err, cap, "%s:%d: expected \"key = value\", got \"%s\"", path, lineno, key);
		return -EINVAL;
	}
	int r = apply_key(s, key, val);
	if (r == -ERANGE) {
		snprintf(err, cap, "%s:%d: %s takes seconds from %g to %d (e.g. %s), not \"%s\"%s",
			 path, lineno, key, seconds_min(key), SECONDS_MAX,
			 seconds_min(key) > 1 ? "30" : "1.5", val,
			 seconds_min(key) > 1 ? " (consent checks go every 4-6 s, RFC 7675 s5.1)" : "");
		return -EINVAL;
	}
	if (r == -EDOM) {
		snprintf(err, cap, "%s:%d: %s takes a whole number from 1 to %d, not \"%s\"",
			 path, lineno, key, SETTINGS_MAX_SESSIONS, val);
		return -EINVAL;
	}
	if (r < 0) {
		snprintf(err, cap, "%s:%d: unknown key \"%s\"; accepted keys: server, user, password, "
			 "ca, relay-fallback, consent-timeout, max-sessions", path, lineno, key);
		return -EINVAL;
	}
	return 0;
}

int settings_load_file(struct settings *s, const char *path, char *err, size_t cap)
{
	char line[1024];
	int lineno = 0, ret = 0;
	FILE *f = fopen(path, "re");

	if (!f) {
		ret = -errno;
		snprintf(err, cap, "cannot read config file %s: %s", path, strerror(errno));
		return ret;
	}
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		ret = parse_line(s, line, path, lineno, err, cap);
		if (ret < 0)
			break;
	}
	fclose(f);
	return ret;
}

void settings_load_env(struct settings *s)
{
	set_if_empty(s->server, sizeof(s->server), getenv("NATCLIENT_SERVER"));
	set_if_empty(s->user, sizeof(s->user), getenv("NATCLIENT_USER"));
	set_if_empty(s->password, sizeof(s->password), getenv("NATCLIENT_PASSWORD"));
}

static int ask(FILE *tty, const char *prompt, char *out, size_t cap, bool echo)
{
	struct termios old, quiet;
	bool restore = false;
	int fd = fileno(tty);

	fputs(prompt, tty);
	fflush(tty);
	if (!echo && tcgetattr(fd, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		restore = tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
	}
	char *got = fgets(out, (int)cap, tty);
	if (restore) {
		tcsetattr(fd, TCSAFLUSH, &old);
		fputc('\n', tty);
	}
	if (!got)
		return -EIO;
	out[strcspn(out, "\r\n")] = '\0';
	return 0;
}

int settings_prompt(struct settings *s)
{
	int err = 0;

	if (s->user[0] && s->password[0])
		return 0;
	FILE *tty = fopen("/dev/tty", "r+e");
	if (!tty)
		return -ENOTTY;
	if (!s->user[0])
		err = ask(tty, "natclient user: ", s->user, sizeof(s->user), true);
	if (!err && !s->password[0])
		err = ask(tty, "natclient password: ", s->password, sizeof(s->password), false);
	fclose(tty);
	return err;
}

/* Split "host:port" / "[v6]:port" / "host" into host and port. */
static int split_hostport(const char *in, char *host, size_t cap, uint16_t *port)
{
	const char *colon;
	size_t hl;

	if (in[0] == '[') {
		const char *rb = strchr(in, ']');
		if (!rb)
			return -EINVAL;
		hl = (size_t)(rb - in - 1);
		in++;
		colon = rb[1] == ':' ? rb + 1 : NULL;
		if (rb[1] && !colon)
			return -EINVAL;
	} else {
		colon = strchr(in, ':');
		if (colon && strchr(colon + 1, ':'))
			colon = NULL; /* a bare IPv6 address */
		hl = colon ? (size_t)(colon - in) : strlen(in);
	}
	if (hl == 0 || hl >= cap)
		return -EINVAL;
	memcpy(host, in, hl);
	host[hl] = '\0';
	if (colon) {
		char *end;
		long p = strtol(colon + 1, &end, 10);
		if (*end || p <= 0 || p > 65535)
			return -EINVAL;
		*port = (uint16_t)p;
	}
	return 0;
}

int settings_resolve(const char *hostport, uint16_t default_port, stun_sockaddr *out,
		     char *err, size_t cap)
{
	char host[256], portstr[8];
	uint16_t port = default_port;
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM }, *res = NULL;
	int rc;

	if (split_hostport(hostport, host, sizeof(host), &port) < 0) {
		snprintf(err, cap, "\"%s\" is not HOST[:PORT] (e.g. stun.example.org:3478, "
			 "127.0.0.1, [::1]:3478)", hostport);
		return -EINVAL;
	}
	snprintf(portstr, sizeof(portstr), "%u", port);
	rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc) {
		snprintf(err, cap, "cannot resolve \"%s\": %s", host, gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	memset(out, 0, sizeof(*out));
	memcpy(out, res->ai_addr, res->ai_addrlen < sizeof(*out) ? res->ai_addrlen : sizeof(*out));
	freeaddrinfo(res);
	return 0;
}

static const struct {
	const char *prefix;
	enum settings_transport tp;
	uint16_t port;
} schemes[] = {
	{ "udp://", SETTINGS_UDP, NATCLIENT_DEFAULT_PORT },
	{ "tcp://", SETTINGS_TCP, NATCLIENT_DEFAULT_PORT },
	{ "tls://", SETTINGS_TLS, NATCLIENT_DEFAULT_TLS_PORT },
};

const char *settings_transport_str(enum settings_transport tp)
{
	return tp == SETTINGS_TCP ? "tcp" : tp == SETTINGS_TLS ? "tls" : "udp";
}

int settings_server_parse(const char *spec, struct settings_server *out, char *err, size_t cap)
{
	const char *rest = spec, *sep = strstr(spec, "://");
	uint16_t port = NATCLIENT_DEFAULT_PORT;
	enum settings_transport tp = SETTINGS_UDP;
	char host[256];

	if (sep) {
		unsigned i;
		for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
			if (!strncasecmp(spec, schemes[i].prefix, strlen(schemes[i].prefix)))
				break;
		if (i == sizeof(schemes) / sizeof(schemes[0])) {
			snprintf(err, cap, "\"%.*s://\" is not a transport: use udp://, tcp:// or "
				 "tls:// (or none: UDP)", (int)(sep - spec), spec);
			return -EINVAL;
		}
		tp = schemes[i].tp;
		port = schemes[i].port;
		rest = sep + 3;
	}
	if (split_hostport(rest, host, sizeof(host), &port) < 0) {
		snprintf(err, cap, "\"%s\" is not [tcp://|tls://]HOST[:PORT] (e.g. "
			 "stun.example.org:3478, tcp://127.0.0.1, tls://[::1]:5349)", spec);
		return -EINVAL;
	}
	int r = settings_resolve(rest, port, &out->addr, err, cap);
	if (r < 0)
		return r;
	out->tp = tp;
	snprintf(out->host, sizeof(out->host), "%s", host);
	return 0;
}
