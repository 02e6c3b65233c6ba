/* config: coturn-style turnserver.conf parser, command-line overrides and
 * validation. Table-driven: one row per key (name, setter, bounds, what is
 * accepted, help), so --help, the file and the command line agree. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include "conf_line.h"
#include "log.h"

struct loader;
struct key;
typedef int (*setter_fn)(struct loader *L, const struct key *k, const char *v);

enum key_kind {
	K_VALUE, /* key = value */
	K_FLAG,  /* bare flag, or a boolean value */
};

struct key {
	const char *name;
	enum key_kind kind;
	bool repeat;
	bool secret;  /* never echo the value */
	setter_fn set;
	size_t off;   /* field for the generic setters */
	uint64_t min, max;
	const char *accepts;
	const char *def;  /* default, for --help */
	const char *help;
};

struct origin {
	const char *src;
	int line; /* 0: command line */
};

struct loader {
	struct config *c;
	const struct config_args *args;
	struct origin at;          /* where the current value comes from */
	struct origin *seen;       /* per key: where it was last set */
	char *err;
	size_t errlen;
	bool custom;               /* setter wrote its own message */
};

#define OFF(f) offsetof(struct config, f)
#define FIELD(L, k, type) ((type *)((char *)(L)->c + (k)->off))

static void where(const struct loader *L, char *buf, size_t cap)
{
	if (L->at.line > 0)
		snprintf(buf, cap, "%s:%d", L->at.src, L->at.line);
	else
		snprintf(buf, cap, "%s", L->at.src);
}

static int fail(struct loader *L, const struct key *k, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct loader *L, const struct key *k, const char *fmt, ...)
{
	char pos[300], msg[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	where(L, pos, sizeof(pos));
	if (k)
		snprintf(L->err, L->errlen, "%s: %s: %s", pos, k->name, msg);
	else
		snprintf(L->err, L->errlen, "%s: %s", pos, msg);
	L->custom = true;
	return -EINVAL;
}

/* --- value parsers ------------------------------------------------------ */

static int parse_u64(const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long x;

	if (!*v || !isdigit((unsigned char)*v))
		return -EINVAL;
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno || *end || x < min || x > max)
		return -EINVAL;
	*out = x;
	return 0;
}

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "1", "yes", "on", "true" };
	static const char *const no[] = { "0", "no", "off", "false" };

	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(v, yes[i]))
			return *out = true, 0;
		if (!strcasecmp(v, no[i]))
			return *out = false, 0;
	}
	return -EINVAL;
}

/* An IP address, IPv6 optionally in brackets; port 0. */
static int parse_ip(const char *v, stun_sockaddr *a)
{
	char buf[INET6_ADDRSTRLEN + 2];
	size_t n = strlen(v);

	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, v, &a->in4.sin_addr) == 1) {
		a->in4.sin_family = AF_INET;
		return 0;
	}
	if (n >= 2 && v[0] == '[' && v[n - 1] == ']' && n - 2 < sizeof(buf)) {
		memcpy(buf, v + 1, n - 2);
		buf[n - 2] = 0;
		v = buf;
	}
	if (inet_pton(AF_INET6, v, &a->in6.sin6_addr) == 1) {
		a->in6.sin6_family = AF_INET6;
		return 0;
	}
	return -EINVAL;
}

/* "IP:PORT" or "[IPv6]:PORT". */
static int parse_ip_port(const char *v, stun_sockaddr *a)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(v, ':');
	uint64_t port;
	size_t hl;

	if (!colon || parse_u64(colon + 1, 1, 65535, &port))
		return -EINVAL;
	hl = (size_t)(colon - v);
	if (hl == 0 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, v, hl);
	host[hl] = 0;
	if (strchr(host, ':') && host[0] != '[')
		return -EINVAL; /* IPv6 needs brackets before a port */
	if (parse_ip(host, a))
		return -EINVAL;
	if (a->sa.sa_family == AF_INET)
		a->in4.sin_port = htons((uint16_t)port);
	else
		a->in6.sin6_port = htons((uint16_t)port);
	return 0;
}

static char *dup_or_null(const char *v)
{
	return strdup(v);
}

/* --- setters ------------------------------------------------------------ */

static int set_str(struct loader *L, const struct key *k, const char *v)
{
	char **f = FIELD(L, k, char *);
	char *s;

	if (!*v)
		return -EINVAL;
	s = dup_or_null(v);
	if (!s)
		return -ENOMEM;
	free(*f);
	*f = s;
	return 0;
}

static int set_bool(struct loader *L, const struct key *k, const char *v)
{
	return parse_bool(v ? v : "yes", FIELD(L, k, bool));
}

static int set_not_bool(struct loader *L, const struct key *k, const char *v)
{
	bool b;

	if (parse_bool(v ? v : "yes", &b))
		return -EINVAL;
	*FIELD(L, k, bool) = !b;
	return 0;
}

static int set_compat(struct loader *L, const struct key *k, const char *v)
{
	bool b;

	(void)L;
	(void)k;
	return parse_bool(v ? v : "yes", &b);
}

static int set_u16(struct loader *L, const struct key *k, const char *v)
{
	uint64_t x;

	if (parse_u64(v, k->min, k->max, &x))
		return -EINVAL;
	*FIELD(L, k, uint16_t) = (uint16_t)x;
	return 0;
}

static int set_u32(struct loader *L, const struct key *k, const char *v)
{
	uint64_t x;

	if (parse_u64(v, k->min, k->max, &x))
		return -EINVAL;
	*FIELD(L, k, uint32_t) = (uint32_t)x;
	return 0;
}

static int set_u64(struct loader *L, const struct key *k, const char *v)
{
	return parse_u64(v, k->min, k->max, FIELD(L, k, uint64_t));
}

static int set_listen_ip(struct loader *L, const struct key *k, const char *v)
{
	struct config *c = L->c;
	stun_sockaddr a;

	if (parse_ip(v, &a))
		return -EINVAL;
	if (c->n_listen_ip >= CFG_MAX_LISTEN)
		return fail(L, k, "at most %d addresses are accepted", CFG_MAX_LISTEN);
	for (int i = 0; i < c->n_listen_ip; i++)
		if (!memcmp(&c->listen_ip[i], &a, sizeof(a)))
			return fail(L, k, "'%s' is given twice", v);
	c->listen_ip[c->n_listen_ip++] = a;
	return 0;
}

static int set_relay_ip(struct loader *L, const struct key *k, const char *v)
{
	struct config *c = L->c;
	stun_sockaddr a;

	if (parse_ip(v, &a))
		return -EINVAL;
	if (c->n_relay_ip >= CFG_MAX_RELAY)
		return fail(L, k, "at most %d addresses are accepted", CFG_MAX_RELAY);
	c->relay_ip[c->n_relay_ip++] = a;
	return 0;
}

static int set_external_ip(struct loader *L, const struct key *k, const char *v)
{
	struct config *c = L->c;
	char pub[64];
	const char *slash = strchr(v, '/');
	size_t n = slash ? (size_t)(slash - v) : strlen(v);

	(void)k;
	if (n >= sizeof(pub))
		return -EINVAL;
	memcpy(pub, v, n);
	pub[n] = 0;
	if (parse_ip(pub, &c->external_ip))
		return -EINVAL;
	c->has_external_ip = true;
	c->has_external_private = false;
	if (!slash)
		return 0;
	if (parse_ip(slash + 1, &c->external_private) ||
	    c->external_private.sa.sa_family != c->external_ip.sa.sa_family)
		return -EINVAL;
	c->has_external_private = true;
	return 0;
}

static int add_user(struct config *c, const char *name, size_t nlen, const char *pw)
{
	struct cfg_user *u = realloc(c->users, (c->n_users + 1) * sizeof(*u));

	if (!u)
		return -ENOMEM;
	c->users = u;
	u = &c->users[c->n_users];
	u->name = strndup(name, nlen);
	u->password = strdup(pw);
	if (!u->name || !u->password) {
		free(u->name);
		free(u->password);
		return -ENOMEM;
	}
	c->n_users++;
	return 0;
}

static int user_line(struct config *c, const char *v)
{
	const char *colon = strchr(v, ':');

	if (!colon || colon == v || !colon[1])
		return -EINVAL;
	return add_user(c, v, (size_t)(colon - v), colon + 1);
}

static int set_user(struct loader *L, const struct key *k, const char *v)
{
	(void)k;
	return user_line(L->c, v);
}

/* userdb: a file of "name:password" lines; '#' comments. */
static int set_userdb(struct loader *L, const struct key *k, const char *v)
{
	char line[1024];
	FILE *f;
	int n = 0, r = 0;

	if (!*v)
		return -EINVAL;
	f = fopen(v, "r");
	if (!f)
		return fail(L, k, "cannot read '%s': %s", v, strerror(errno));
	while (!r && fgets(line, sizeof(line), f)) {
		struct conf_line t;

		n++;
		if (conf_line_split(line, CONF_LINE_WHOLE, &t) == CONF_LINE_BLANK)
			continue;
		r = user_line(L->c, t.key);
		if (r == -EINVAL)
			r = fail(L, k, "%s:%d: expected name:password (value not shown)", v, n);
	}
	fclose(f);
	if (r)
		return r;
	free(L->c->userdb);
	L->c->userdb = strdup(v);
	return L->c->userdb ? 0 : -ENOMEM;
}

static int set_secret(struct loader *L, const struct key *k, const char *v)
{
	struct config *c = L->c;
	char **s;

	(void)k;
	if (!*v)
		return -EINVAL;
	s = realloc(c->secrets, (c->n_secrets + 1) * sizeof(*s));
	if (!s)
		return -ENOMEM;
	c->secrets = s;
	s[c->n_secrets] = strdup(v);
	if (!s[c->n_secrets])
		return -ENOMEM;
	c->n_secrets++;
	return 0;
}

static int set_peer_range(struct loader *L, const struct key *k, const char *v)
{
	struct config *c = L->c;
	bool denied = !strcmp(k->name, "denied-peer-ip");
	struct peer_range **arr = denied ? &c->denied_peer : &c->allowed_peer;
	size_t *n = denied ? &c->n_denied_peer : &c->n_allowed_peer;
	struct peer_range r, *p;
	const char *why;

	if (peer_range_parse(v, &r, &why)) {
		bool lists = strstr(why, "accepted") != NULL;

		return fail(L, k, "'%s' is not accepted: %s%s%s", v, why,
			    lists ? "" : "; expected ", lists ? "" : k->accepts);
	}
	p = realloc(*arr, (*n + 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	p[(*n)++] = r;
	*arr = p;
	return 0;
}

static int set_workers(struct loader *L, const struct key *k, const char *v)
{
	uint64_t x;

	if (!strcasecmp(v, "auto")) {
		L->c->workers = 0;
		return 0;
	}
	if (parse_u64(v, k->min, k->max, &x))
		return -EINVAL;
	L->c->workers = (int)x;
	return 0;
}

static int set_log_level(struct loader *L, const struct key *k, const char *v)
{
	int lvl = log_level_parse(v);

	(void)k;
	if (lvl < 0)
		return -EINVAL;
	L->c->log_level = lvl;
	return 0;
}

static int set_log_file(struct loader *L, const struct key *k, const char *v)
{
	if (!strcmp(v, "stderr") || !strcmp(v, "-")) {
		free(L->c->log_file);
		L->c->log_file = NULL;
		return 0;
	}
	return set_str(L, k, v);
}

static int set_metrics(struct loader *L, const struct key *k, const char *v)
{
	bool on;

	(void)k;
	if (!parse_bool(v, &on) && !on) {
		L->c->has_metrics = false;
		return 0;
	}
	if (parse_ip_port(v, &L->c->metrics_listen))
		return -EINVAL;
	L->c->has_metrics = true;
	return 0;
}

/* --- the key table ------------------------------------------------------ */

#define IPV "an IPv4 or IPv6 address (e.g. 127.0.0.1 or ::1)"
#define PORTV "a port number 1-65535"
#define BOOLV "nothing (a bare flag) or yes/no, on/off, true/false, 1/0"

static const struct key keys[] = {
	{ "listening-ip", K_VALUE, true, false, set_listen_ip, 0, 0, 0, IPV,
	  "0.0.0.0 and ::", "Address to listen on (repeatable). Two addresses of one family enable RFC 5780." },
	{ "listening-port", K_VALUE, false, false, set_u16, OFF(listening_port), 1, 65535, PORTV,
	  "3478", "UDP and TCP port for STUN/TURN." },
	{ "alt-listening-port", K_VALUE, false, false, set_u16, OFF(alt_listening_port), 1, 65535, PORTV,
	  "listening-port + 1", "Second port for RFC 5780 (used with two listening-ip of one family)." },
	{ "tls-listening-port", K_VALUE, false, false, set_u16, OFF(tls_listening_port), 1, 65535, PORTV,
	  "5349", "TLS (TCP) and DTLS (UDP) port; used when cert and pkey are set." },
	{ "no-udp", K_FLAG, false, false, set_bool, OFF(no_udp), 0, 0, BOOLV, "off", "Do not listen on UDP." },
	{ "no-tcp", K_FLAG, false, false, set_bool, OFF(no_tcp), 0, 0, BOOLV, "off", "Do not listen on TCP." },
	{ "no-tls", K_FLAG, false, false, set_bool, OFF(no_tls), 0, 0, BOOLV, "off", "Do not listen on TLS." },
	{ "no-dtls", K_FLAG, false, false, set_bool, OFF(no_dtls), 0, 0, BOOLV, "off", "Do not listen on DTLS." },
	{ "workers", K_VALUE, false, false, set_workers, 0, 1, 256, "auto or a number 1-256",
	  "auto", "Worker threads, each with its own event loop and SO_REUSEPORT sockets." },
	{ "relay-ip", K_VALUE, true, false, set_relay_ip, 0, 0, 0, IPV,
	  "the listening addresses", "TURN relay address (repeatable)." },
	{ "external-ip", K_VALUE, false, false, set_external_ip, 0, 0, 0,
	  "PUBLIC-IP or PUBLIC-IP/PRIVATE-IP (same family)", "none",
	  "Public address to announce when behind a 1:1 NAT." },
	{ "min-port", K_VALUE, false, false, set_u16, OFF(min_port), 1, 65535, PORTV,
	  "49152", "Lowest relay port." },
	{ "max-port", K_VALUE, false, false, set_u16, OFF(max_port), 1, 65535, PORTV,
	  "65535", "Highest relay port." },
	{ "realm", K_VALUE, false, false, set_str, OFF(realm), 0, 0, "a non-empty string",
	  "natkit", "Realm for long-term credentials." },
	{ "user", K_VALUE, true, true, set_user, 0, 0, 0, "name:password",
	  "none", "A long-term credential user (repeatable). Never logged." },
	{ "userdb", K_VALUE, false, false, set_userdb, 0, 0, 0,
	  "a readable file of name:password lines", "none", "File of users, one name:password per line, # comments." },
	{ "static-auth-secret", K_VALUE, true, true, set_secret, 0, 0, 0, "a non-empty string",
	  "none", "TURN REST shared secret (repeatable; the first signs, all verify). Never logged." },
	{ "no-auth", K_FLAG, false, false, set_bool, OFF(no_auth), 0, 0, BOOLV,
	  "off", "Serve TURN and rendezvous without authentication: an OPEN RELAY, for a closed "
	  "test network only. Without it and without user/userdb/static-auth-secret, TURN and "
	  "rendezvous requests get 403 (Binding is always served)." },
	{ "cert", K_VALUE, false, false, set_str, OFF(cert), 0, 0, "a readable PEM file",
	  "none", "TLS/DTLS certificate chain (PEM). Reloaded on SIGHUP." },
	{ "pkey", K_VALUE, false, false, set_str, OFF(pkey), 0, 0, "a readable PEM file",
	  "none", "TLS/DTLS private key (PEM). Reloaded on SIGHUP." },
	{ "allow-loopback-peers", K_FLAG, false, false, set_bool, OFF(allow_loopback_peers), 0, 0, BOOLV,
	  "off", "Allow TURN peers on 127.0.0.0/8 and ::1." },
	{ "rfc5766-channels", K_FLAG, false, false, set_bool, OFF(rfc5766_channels), 0, 0, BOOLV,
	  "off", "Also accept the RFC 5766 channel numbers 0x5000-0x7FFF, which RFC 8656 s12 "
	  "reserves (coturn's clients pick them)." },
	{ "denied-peer-ip", K_VALUE, true, false, set_peer_range, 0, 0, 0,
	  "an IP, a range IP-IP or a prefix IP/LEN", "none", "Peer addresses TURN refuses (repeatable)." },
	{ "allowed-peer-ip", K_VALUE, true, false, set_peer_range, 0, 0, 0,
	  "an IP, a range IP-IP or a prefix IP/LEN", "none",
	  "Peer addresses TURN allows even if denied (repeatable)." },
	{ "max-allocate-lifetime", K_VALUE, false, false, set_u32, OFF(max_allocate_lifetime),
	  600, 86400, "seconds, 600-86400", "3600",
	  "Longest TURN allocation lifetime granted (RFC 8656 s7.2; the default is 600)." },
	{ "user-quota", K_VALUE, false, false, set_u32, OFF(user_quota), 0, UINT32_MAX,
	  "a number (0 = unlimited)", "50", "Allocations per user (486 beyond). Applied to new "
	  "allocations on SIGHUP." },
	{ "total-quota", K_VALUE, false, false, set_u32, OFF(total_quota), 0, UINT32_MAX,
	  "a number (0 = unlimited)", "relay ports, at most RLIMIT_NOFILE - 1024",
	  "Allocations in total (486 beyond). Lowering it on SIGHUP applies to new allocations; "
	  "it cannot grow past the value at start." },
	{ "max-bps", K_VALUE, false, false, set_u64, OFF(max_bps), 0, UINT64_MAX,
	  "a number of bytes per second (0 = unlimited)", "0", "Bandwidth cap per allocation." },
	{ "rendezvous", K_FLAG, false, false, set_bool, OFF(rendezvous), 0, 0, BOOLV,
	  "on", "Serve the rendezvous methods (docs/PROTOCOL.md)." },
	{ "no-rendezvous", K_FLAG, false, false, set_not_bool, OFF(rendezvous), 0, 0, BOOLV,
	  "off", "Same as rendezvous = off." },
	{ "rendezvous-max-ids", K_VALUE, false, false, set_u32, OFF(rdv_max_ids), 1, 10000000,
	  "a number 1-10000000", "10000", "IDs the rendezvous registry holds in total." },
	{ "rendezvous-user-quota", K_VALUE, false, false, set_u32, OFF(rdv_user_quota), 1, 100000,
	  "a number 1-100000", "16", "IDs one user may hold at once." },
	{ "udp-recv-buffer", K_VALUE, false, false, set_u32, OFF(udp_recv_buffer), 0, 1u << 30,
	  "bytes 0-1073741824 (0 = the kernel's default)", "4194304",
	  "SO_RCVBUF of the UDP listening and relayed sockets (SO_RCVBUFFORCE when permitted; "
	  "the size granted is logged)." },
	{ "udp-send-buffer", K_VALUE, false, false, set_u32, OFF(udp_send_buffer), 0, 1u << 30,
	  "bytes 0-1073741824 (0 = the kernel's default)", "4194304",
	  "SO_SNDBUF of the UDP listening and relayed sockets (SO_SNDBUFFORCE when permitted)." },
	{ "max-connections", K_VALUE, false, false, set_u32, OFF(max_connections), 1, 1000000,
	  "a number 1-1000000", "10000", "Concurrent TCP/TLS connections (whole process)." },
	{ "idle-timeout", K_VALUE, false, false, set_u32, OFF(idle_timeout), 1, 86400,
	  "seconds 1-86400", "300", "Close a stream after this long without a complete frame." },
	{ "rate-limit", K_VALUE, false, false, set_u32, OFF(rate_limit), 0, 10000000,
	  "requests per second (0 = off)", "0", "Unauthenticated requests per second per source IP (per worker)." },
	{ "rate-limit-redirect", K_VALUE, false, false, set_u32, OFF(rate_limit_redirect), 0, 10000000,
	  "requests per second (0 = off)", "100",
	  "Requests with CHANGE-REQUEST, RESPONSE-PORT or PADDING per second per source IP (per worker)." },
	{ "max-padding", K_VALUE, false, false, set_u16, OFF(max_padding), 0, 3072,
	  "bytes 0-3072", "1500", "Largest PADDING accepted in a request and sent in a response." },
	{ "no-software-attribute", K_FLAG, false, false, set_bool, OFF(no_software_attribute), 0, 0, BOOLV,
	  "off", "Do not send SOFTWARE." },
	{ "log-file", K_VALUE, false, false, set_log_file, OFF(log_file), 0, 0, "a path, or stderr",
	  "stderr", "Where log lines go (reopened on SIGHUP)." },
	{ "log-level", K_VALUE, false, false, set_log_level, 0, 0, 0, "error, warn, info or debug",
	  "info", "Least severe level logged." },
	{ "metrics-listen", K_VALUE, false, false, set_metrics, 0, 0, 0,
	  "IP:PORT, [IPv6]:PORT or off", "off", "Prometheus text endpoint (HTTP GET /metrics)." },
	/* coturn flags that describe what stund always does. */
	{ "fingerprint", K_FLAG, false, false, set_compat, 0, 0, 0, BOOLV,
	  "-", "Accepted for coturn compatibility (FINGERPRINT is mirrored from the request)." },
	{ "lt-cred-mech", K_FLAG, false, false, set_compat, 0, 0, 0, BOOLV,
	  "-", "Accepted for coturn compatibility (implied by user/userdb)." },
	{ "use-auth-secret", K_FLAG, false, false, set_compat, 0, 0, 0, BOOLV,
	  "-", "Accepted for coturn compatibility (implied by static-auth-secret)." },
	{ "no-cli", K_FLAG, false, false, set_compat, 0, 0, 0, BOOLV,
	  "-", "Accepted for coturn compatibility (stund has no telnet CLI)." },
};
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

static const struct key *find_key(const char *name, size_t len)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (strlen(keys[i].name) == len && !strncmp(keys[i].name, name, len))
			return &keys[i];
	return NULL;
}

static int key_index(const struct key *k)
{
	return (int)(k - keys);
}

/* --- applying a key ----------------------------------------------------- */

static int apply(struct loader *L, const struct key *k, const char *v)
{
	int r;

	if (k->kind == K_VALUE && !v)
		return fail(L, k, "needs a value: %s", k->accepts);
	L->custom = false;
	r = k->set(L, k, v);
	if (r == -EINVAL && !L->custom) {
		if (k->secret)
			return fail(L, k, "value not accepted (not shown); expected %s", k->accepts);
		return fail(L, k, "'%s' is not accepted; expected %s", v, k->accepts);
	}
	if (r == -ENOMEM)
		return fail(L, k, "out of memory");
	if (r)
		return r;
	L->seen[key_index(k)] = L->at;
	return 0;
}

static bool overridden(const struct loader *L, const struct key *k)
{
	for (int i = 0; L->args && i < L->args->n; i++)
		if (!strcmp(L->args->keys[i], k->name))
			return true;
	return false;
}

/* One line: "key", "key = value", "key=value" or "key value"; '#' starts
 * a comment at the start or after whitespace (so a password may hold '#'). */
static int parse_line(struct loader *L, char *line)
{
	struct conf_line t;
	const struct key *k;
	char *v;

	if (conf_line_split(line, CONF_LINE_HASH_WORD | CONF_LINE_UNQUOTE, &t) == CONF_LINE_BLANK)
		return 0;
	v = t.value;
	k = find_key(t.key, strlen(t.key));
	if (!k)
		return fail(L, NULL, "unknown key '%s' (stund --help lists the accepted keys)", t.key);
	if (k->kind == K_VALUE && (!v || !*v))
		return fail(L, k, "needs a value: %s", k->accepts);
	if (overridden(L, k))
		return 0;
	return apply(L, k, v && *v ? v : NULL);
}

static int parse_text(struct loader *L, const char *name, const char *text)
{
	char line[4096];
	const char *p = text;
	int r;

	L->at.src = name;
	L->at.line = 0;
	while (*p) {
		size_t n = strcspn(p, "\n");

		L->at.line++;
		if (n >= sizeof(line))
			return fail(L, NULL, "line longer than %zu bytes", sizeof(line) - 1);
		memcpy(line, p, n);
		line[n] = 0;
		r = parse_line(L, line);
		if (r)
			return r;
		p += n + (p[n] == '\n');
	}
	return 0;
}

static int apply_args(struct loader *L)
{
	int r;

	L->at.src = "command line";
	L->at.line = 0;
	for (int i = 0; L->args && i < L->args->n; i++) {
		const struct key *k = find_key(L->args->keys[i], strlen(L->args->keys[i]));

		r = apply(L, k, L->args->vals[i]);
		if (r)
			return r;
	}
	return 0;
}

/* --- defaults and validation -------------------------------------------- */

static void defaults(struct config *c)
{
	c->listening_port = CFG_DEFAULT_PORT;
	c->tls_listening_port = CFG_DEFAULT_TLS_PORT;
	c->min_port = 49152;
	c->max_port = 65535;
	c->max_allocate_lifetime = 3600;
	c->rendezvous = true;
	c->rdv_max_ids = RDV_DEFAULT_MAX_IDS;
	c->rdv_user_quota = RDV_DEFAULT_USER_QUOTA;
	c->user_quota = CFG_DEFAULT_USER_QUOTA;
	c->udp_recv_buffer = c->udp_send_buffer = CFG_DEFAULT_UDP_BUFFER;
	c->max_connections = 10000;
	c->idle_timeout = 300;
	c->rate_limit_redirect = 100;
	c->max_padding = 1500;
	c->log_level = LOG_INFO;
	c->refs = 1;
}

/* Point messages after parsing at where a key was set. */
static const struct key *blame(struct loader *L, const char *name)
{
	const struct key *k = find_key(name, strlen(name));

	L->at = L->seen[key_index(k)];
	if (!L->at.src) {
		L->at.src = L->c->path ? L->c->path : "defaults";
		L->at.line = 0;
	}
	return k;
}

static int check_readable(struct loader *L, const char *name, const char *path)
{
	if (!path || !access(path, R_OK))
		return 0;
	return fail(L, blame(L, name), "cannot read '%s': %s; expected %s",
		    path, strerror(errno), blame(L, name)->accepts);
}

static int validate_ports(struct loader *L)
{
	struct config *c = L->c;

	if (!L->seen[key_index(find_key("alt-listening-port", 18))].src)
		c->alt_listening_port = c->listening_port == 65535 ? 65534 : c->listening_port + 1;
	if (c->alt_listening_port == c->listening_port)
		return fail(L, blame(L, "alt-listening-port"),
			    "must differ from listening-port (%u)", c->listening_port);
	if (c->tls_listening_port == c->listening_port ||
	    c->tls_listening_port == c->alt_listening_port)
		return fail(L, blame(L, "tls-listening-port"),
			    "%u is already listening-port or alt-listening-port; expected another port",
			    c->tls_listening_port);
	if (c->min_port > c->max_port)
		return fail(L, blame(L, "min-port"), "%u is above max-port %u; expected min-port <= max-port",
			    c->min_port, c->max_port);
	return 0;
}

/* total-quota when not set: one allocation per relay port (of each
 * relay-ip), and no more than the fds the process may open, less a
 * reserve (an allocation holds one socket per relayed address). */
static void default_total_quota(struct loader *L)
{
	struct config *c = L->c;
	struct rlimit rl;
	uint64_t ports = (uint64_t)(c->max_port - c->min_port + 1) *
			 (uint64_t)(c->n_relay_ip ? c->n_relay_ip : 1);
	uint64_t fds = UINT32_MAX;

	if (L->seen[key_index(find_key("total-quota", 11))].src)
		return;
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY)
		fds = rl.rlim_cur > 2 * CFG_FD_RESERVE ? rl.rlim_cur - CFG_FD_RESERVE
						       : rl.rlim_cur / 2;
	c->total_quota = (uint32_t)(ports < fds ? ports : fds);
	if (!c->total_quota)
		c->total_quota = 1;
}

static int validate(struct loader *L)
{
	struct config *c = L->c;
	int r;

	r = validate_ports(L);
	if (r)
		return r;
	default_total_quota(L);
	if (c->no_auth && config_has_credentials(c))
		return fail(L, blame(L, "no-auth"),
			    "conflicts with user/userdb/static-auth-secret; expected either "
			    "credentials or no-auth");
	if (!c->realm && !(c->realm = strdup("natkit")))
		return -ENOMEM;
	if (!!c->cert != !!c->pkey)
		return fail(L, blame(L, c->cert ? "cert" : "pkey"),
			    "cert and pkey must be given together");
	r = check_readable(L, "cert", c->cert);
	if (!r)
		r = check_readable(L, "pkey", c->pkey);
	if (r)
		return r;
	if (c->no_udp && c->no_tcp && (c->no_tls || !c->cert) && (c->no_dtls || !c->cert))
		return fail(L, blame(L, "no-udp"), "every transport is disabled; expected at least one");
	if (c->n_listen_ip == 0) {
		c->listen_ip[0].in4.sin_family = AF_INET;
		c->listen_ip[1].in6.sin6_family = AF_INET6;
		c->n_listen_ip = 2;
	}
	return 0;
}

/* --- public ------------------------------------------------------------- */

static char *read_file(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	do {
		if (len + 4096 + 1 > cap) {
			char *nb = realloc(buf, cap = cap * 2 + 8192);
			if (!nb) {
				free(buf);
				fclose(f);
				snprintf(err, errlen, "%s: out of memory", path);
				return NULL;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, 4096, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = 0;
	return buf;
}

static void config_free(struct config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_users; i++) {
		if (c->users[i].password)
			explicit_bzero(c->users[i].password, strlen(c->users[i].password));
		free(c->users[i].name);
		free(c->users[i].password);
	}
	free(c->users);
	for (size_t i = 0; i < c->n_secrets; i++) {
		explicit_bzero(c->secrets[i], strlen(c->secrets[i]));
		free(c->secrets[i]);
	}
	free(c->secrets);
	free(c->denied_peer);
	free(c->allowed_peer);
	free(c->realm);
	free(c->userdb);
	free(c->cert);
	free(c->pkey);
	free(c->log_file);
	free(c->path);
	free(c);
}

int config_load_string(const char *name, const char *text, const struct config_args *a,
		       struct config **out, char *err, size_t errlen)
{
	struct origin seen[N_KEYS] = { { 0 } };
	struct loader L = { .args = a, .seen = seen, .err = err, .errlen = errlen };
	int r = -ENOMEM;

	err[0] = 0;
	L.c = calloc(1, sizeof(*L.c));
	if (!L.c)
		goto out;
	defaults(L.c);
	if (name && !(L.c->path = strdup(name)))
		goto out;
	r = text ? parse_text(&L, name, text) : 0;
	if (!r)
		r = apply_args(&L);
	if (!r)
		r = validate(&L);
out:
	if (r) {
		if (!err[0])
			snprintf(err, errlen, "%s", strerror(-r));
		config_free(L.c);
		return r;
	}
	*out = L.c;
	return 0;
}

int config_load(const struct config_args *a, struct config **out, char *err, size_t errlen)
{
	char *text = NULL;
	int r;

	if (a->conf_path) {
		text = read_file(a->conf_path, err, errlen);
		if (!text)
			return -ENOENT;
	}
	r = config_load_string(a->conf_path, text, a, out, err, errlen);
	free(text);
	return r;
}

const struct config *config_get(const struct config *c)
{
	struct config *m = (struct config *)c;

	__atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
	return c;
}

void config_put(const struct config *c)
{
	struct config *m = (struct config *)c;

	if (c && __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) == 0)
		config_free(m);
}

bool config_same_listeners(const struct config *a, const struct config *b)
{
	return a->n_listen_ip == b->n_listen_ip &&
	       !memcmp(a->listen_ip, b->listen_ip, sizeof(a->listen_ip[0]) * a->n_listen_ip) &&
	       a->listening_port == b->listening_port &&
	       a->alt_listening_port == b->alt_listening_port &&
	       a->tls_listening_port == b->tls_listening_port &&
	       a->no_udp == b->no_udp && a->no_tcp == b->no_tcp &&
	       a->no_tls == b->no_tls && a->no_dtls == b->no_dtls &&
	       !!a->cert == !!b->cert && a->workers == b->workers &&
	       a->has_metrics == b->has_metrics &&
	       (!a->has_metrics || !memcmp(&a->metrics_listen, &b->metrics_listen,
					   sizeof(a->metrics_listen)));
}

/* --- command line ------------------------------------------------------- */

static int args_push(struct config_args *a, const char *k, const char *v)
{
	const char **nk = realloc(a->keys, (a->n + 1) * sizeof(*nk));

	if (!nk)
		return -ENOMEM;
	a->keys = nk;
	nk = realloc(a->vals, (a->n + 1) * sizeof(*nk));
	if (!nk)
		return -ENOMEM;
	a->vals = nk;
	a->keys[a->n] = k;
	a->vals[a->n] = v;
	a->n++;
	return 0;
}

static int long_option(struct config_args *a, int argc, char **argv, int *i,
		       char *err, size_t errlen)
{
	const char *opt = argv[*i] + 2;
	const char *eq = strchr(opt, '=');
	size_t len = eq ? (size_t)(eq - opt) : strlen(opt);
	const struct key *k = find_key(opt, len);
	const char *name, *val = eq ? eq + 1 : NULL;

	if (!k) {
		snprintf(err, errlen, "unknown option '--%.*s'; run 'stund --help' for the options",
			 (int)len, opt);
		return -EINVAL;
	}
	if (k->kind == K_VALUE && !val) {
		if (*i + 1 >= argc) {
			snprintf(err, errlen, "--%s needs a value: %s", k->name, k->accepts);
			return -EINVAL;
		}
		val = argv[++*i];
	}
	name = k->name; /* static storage */
	return args_push(a, name, val);
}

int config_args_parse(struct config_args *a, int argc, char **argv, char *err, size_t errlen)
{
	int r = 0;

	memset(a, 0, sizeof(*a));
	err[0] = 0;
	for (int i = 1; i < argc && !r; i++) {
		const char *s = argv[i];

		if (!strcmp(s, "-c") || !strcmp(s, "--config")) {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "%s needs a file name", s);
				return -EINVAL;
			}
			a->conf_path = argv[++i];
		} else if (!strncmp(s, "--config=", 9)) {
			a->conf_path = s + 9;
		} else if (!strcmp(s, "--check-config")) {
			a->check_config = true;
		} else if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			a->help = true;
		} else if (!strcmp(s, "-V") || !strcmp(s, "--version")) {
			a->version = true;
		} else if (!strncmp(s, "--", 2) && s[2]) {
			r = long_option(a, argc, argv, &i, err, errlen);
		} else {
			snprintf(err, errlen, "unexpected argument '%s'; run 'stund --help' for the usage", s);
			return -EINVAL;
		}
	}
	if (r == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	return r;
}

void config_args_free(struct config_args *a)
{
	free(a->keys);
	free(a->vals);
	memset(a, 0, sizeof(*a));
}

void config_print_help(FILE *f)
{
	fprintf(f,
		"usage: stund [-c FILE] [--check-config] [--KEY VALUE | --KEY=VALUE | --FLAG]...\n"
		"\n"
		"stund is a STUN/TURN server (RFC 8489, RFC 5780, RFC 8656) and rendezvous point.\n"
		"\n"
		"  -c, --config FILE   read FILE (coturn turnserver.conf format: 'key = value',\n"
		"                      'key=value' or a bare flag per line, '#' comments)\n"
		"  --check-config      validate the configuration, print a summary, exit 0 (or 1)\n"
		"  -h, --help          this text\n"
		"  -V, --version       print the version\n"
		"\n"
		"Every configuration key below may also be given on the command line as\n"
		"--key value, --key=value or --flag; command-line values override the file\n"
		"(for a repeatable key, the command line's values replace the file's).\n"
		"\n"
		"Keys:\n");
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key *k = &keys[i];

		fprintf(f, "  %s%s%s\n", k->name, k->kind == K_FLAG ? "" : " = VALUE",
			k->repeat ? "  (repeatable)" : "");
		fprintf(f, "      %s\n      accepts: %s; default: %s\n", k->help, k->accepts, k->def);
	}
	fprintf(f,
		"\n"
		"Signals: SIGHUP reloads the configuration file and TLS certificate (a bad\n"
		"file is rejected and the running configuration kept); SIGTERM or SIGINT\n"
		"drain connections and exit.\n"
		"Exit status: 0 ok, 1 configuration or startup error, 2 usage error.\n"
		"See docs/stund.md for the full reference.\n");
}

static const char *ip_text(const stun_sockaddr *a, char *buf, size_t cap)
{
	const void *p = a->sa.sa_family == AF_INET ? (const void *)&a->in4.sin_addr
						   : (const void *)&a->in6.sin6_addr;

	if (!inet_ntop(a->sa.sa_family, p, buf, cap))
		snprintf(buf, cap, "?");
	return buf;
}

void config_describe(const struct config *c, char *buf, size_t cap)
{
	char ip[INET6_ADDRSTRLEN];
	size_t n = 0;

#define PUT(...) do { int r_ = snprintf(buf + n, n < cap ? cap - n : 0, __VA_ARGS__); \
		      if (r_ > 0) n += (size_t)r_; } while (0)
	PUT("listening-ip");
	for (int i = 0; i < c->n_listen_ip; i++)
		PUT(" %s", ip_text(&c->listen_ip[i], ip, sizeof(ip)));
	PUT("; ports %u/%u tls %u; workers ", c->listening_port, c->alt_listening_port,
	    c->tls_listening_port);
	if (c->workers)
		PUT("%d", c->workers);
	else
		PUT("auto");
	PUT("; realm %s; users %zu; secrets %zu%s; quotas %u/user %u total; rendezvous %s; "
	    "log-level %s; metrics ",
	    c->realm, c->n_users, c->n_secrets, c->no_auth ? "; no-auth" : "", c->user_quota,
	    c->total_quota, c->rendezvous ? "on" : "off",
	    log_level_name(c->log_level));
	if (c->has_metrics)
		PUT("%s:%u", ip_text(&c->metrics_listen, ip, sizeof(ip)),
		    ntohs(c->metrics_listen.in4.sin_port));
	else
		PUT("off");
#undef PUT
	if (n >= cap && cap)
		buf[cap - 1] = 0;
}
