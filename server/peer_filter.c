/* peer_filter: the relay's peer-address policy. See peer_filter.h. */
#include "peer_filter.h"
#include "conf_line.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ifaddrs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One spelling of a peer address: the address as written, or an IPv4
 * address embedded in it. IPv4 uses a[0..3]. */
struct addr_form {
	int family;
	uint8_t a[16];
};

/* A peer has at most: the IPv6 as written, plus Teredo's two IPv4s. */
#define MAX_FORMS 3

struct self_addr {
	struct addr_form f;
	uint16_t port; /* 0 = none given */
};

struct peer_filter {
	bool allow_loopback;
	struct peer_range *allowed, *denied; /* owned */
	size_t n_allowed, n_denied;
	struct self_addr *self;              /* owned */
	size_t n_self, cap_self;
};

static const char *const reason_names[PEER_REASON_COUNT] = {
	[PEER_OK] = "allowed",
	[PEER_DENY_UNSPECIFIED] = "unspecified",
	[PEER_DENY_LOOPBACK] = "loopback",
	[PEER_DENY_THIS_NETWORK] = "this-network",
	[PEER_DENY_LINK_LOCAL] = "link-local",
	[PEER_DENY_SITE_LOCAL] = "site-local",
	[PEER_DENY_MULTICAST] = "multicast",
	[PEER_DENY_BROADCAST] = "broadcast",
	[PEER_DENY_RESERVED] = "reserved",
	[PEER_DENY_TUNNEL] = "tunnel",
	[PEER_DENY_SELF] = "self",
	[PEER_DENY_DENIED_RANGE] = "denied-peer-ip",
	[PEER_DENY_BAD_FAMILY] = "bad-family",
};

const char *peer_reason_name(enum peer_reason r)
{
	if ((unsigned)r >= PEER_REASON_COUNT)
		return "unknown";
	return reason_names[r];
}

static int addr_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* ---- default denials ---- */

static enum peer_reason deny_v4(const uint8_t *a)
{
	uint32_t h = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];

	if (h == 0)
		return PEER_DENY_UNSPECIFIED;
	if (a[0] == 0)
		return PEER_DENY_THIS_NETWORK;   /* RFC 1122 s3.2.1.3 */
	if (a[0] == 127)
		return PEER_DENY_LOOPBACK;
	if (a[0] == 169 && a[1] == 254)
		return PEER_DENY_LINK_LOCAL;     /* RFC 3927 */
	if (h == 0xffffffffu)
		return PEER_DENY_BROADCAST;
	if ((a[0] & 0xf0) == 0xe0)
		return PEER_DENY_MULTICAST;      /* 224/4 */
	if ((a[0] & 0xf0) == 0xf0)
		return PEER_DENY_RESERVED;       /* 240/4 */
	return PEER_OK;
}

static bool v6_is_loopback(const uint8_t *a)
{
	return all_zero(a, 15) && a[15] == 1;
}

static bool v6_is_6to4(const uint8_t *a)
{
	return a[0] == 0x20 && a[1] == 0x02;                         /* 2002::/16 */
}

static bool v6_is_teredo(const uint8_t *a)
{
	return a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0; /* 2001::/32 */
}

/* RFC 8656 s21.4: "a TURN server MUST NOT accept Teredo or 6to4
 * addresses in these requests" (tunnel amplification). */
static bool v6_is_tunnel(const uint8_t *a)
{
	return v6_is_6to4(a) || v6_is_teredo(a);
}

bool peer_addr_tunneled(const stun_sockaddr *a)
{
	return a->sa.sa_family == AF_INET6 &&
	       v6_is_tunnel((const uint8_t *)&a->in6.sin6_addr);
}

static enum peer_reason deny_v6(const uint8_t *a)
{
	if (all_zero(a, 16))
		return PEER_DENY_UNSPECIFIED;
	if (v6_is_loopback(a))
		return PEER_DENY_LOOPBACK;
	if (a[0] == 0xff)
		return PEER_DENY_MULTICAST;      /* ff00::/8 */
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
		return PEER_DENY_LINK_LOCAL;     /* fe80::/10 */
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)
		return PEER_DENY_SITE_LOCAL;     /* fec0::/10 */
	if (v6_is_tunnel(a))
		return PEER_DENY_TUNNEL;
	return PEER_OK;
}

static enum peer_reason deny_default(const struct addr_form *f)
{
	return f->family == AF_INET ? deny_v4(f->a) : deny_v6(f->a);
}

/* ---- embeddings: every IPv4 address an IPv6 address can lead to ---- */

static void form_v4(struct addr_form *f, const uint8_t *v4, bool invert)
{
	memset(f, 0, sizeof(*f));
	f->family = AF_INET;
	for (int i = 0; i < 4; i++)
		f->a[i] = invert ? (uint8_t)~v4[i] : v4[i];
}

static const uint8_t pfx_mapped[12] = { 0,0,0,0, 0,0,0,0, 0,0,0xff,0xff };
static const uint8_t pfx_translated[12] = { 0,0,0,0, 0,0,0,0, 0xff,0xff,0,0 };
static const uint8_t pfx_nat64[12] = { 0,0x64,0xff,0x9b, 0,0,0,0, 0,0,0,0 };

/* Append the IPv4 forms embedded in the IPv6 address a; returns how many. */
static int embedded_v4(const uint8_t *a, struct addr_form *out)
{
	if (!memcmp(a, pfx_mapped, 12) || !memcmp(a, pfx_translated, 12) ||
	    !memcmp(a, pfx_nat64, 12)) {
		/* ::ffff:a.b.c.d (RFC 4291 s2.5.5.2), ::ffff:0:a.b.c.d
		 * (RFC 2765), 64:ff9b::a.b.c.d (RFC 6052 s2.1) */
		form_v4(&out[0], a + 12, false);
		return 1;
	}
	if (all_zero(a, 12)) {
		/* ::a.b.c.d (RFC 4291 s2.5.5.1); :: and ::1 are IPv6's own */
		if (all_zero(a, 16) || v6_is_loopback(a))
			return 0;
		form_v4(&out[0], a + 12, false);
		return 1;
	}
	if (v6_is_6to4(a)) {
		form_v4(&out[0], a + 2, false);      /* 6to4, RFC 3056 s2 */
		return 1;
	}
	if (v6_is_teredo(a)) {
		/* Teredo, RFC 4380 s4: server IPv4 in bits 32-63, client
		 * IPv4 inverted in bits 96-127 */
		form_v4(&out[0], a + 4, false);
		form_v4(&out[1], a + 12, true);
		return 2;
	}
	return 0;
}

/* The forms of a socket address: [0] as written, then embedded IPv4s.
 * Returns the count, or 0 for an unknown family. */
static int peer_forms(const stun_sockaddr *p, struct addr_form *out)
{
	memset(&out[0], 0, sizeof(out[0]));
	if (p->sa.sa_family == AF_INET) {
		out[0].family = AF_INET;
		memcpy(out[0].a, &p->in4.sin_addr, 4);
		return 1;
	}
	if (p->sa.sa_family != AF_INET6)
		return 0;
	out[0].family = AF_INET6;
	memcpy(out[0].a, &p->in6.sin6_addr, 16);
	return 1 + embedded_v4(out[0].a, out + 1);
}

static uint16_t peer_port(const stun_sockaddr *p)
{
	if (p->sa.sa_family == AF_INET)
		return ntohs(p->in4.sin_port);
	if (p->sa.sa_family == AF_INET6)
		return ntohs(p->in6.sin6_port);
	return 0;
}

/* ---- ranges ---- */

static bool range_has(const struct peer_range *r, const struct addr_form *f)
{
	int n = addr_len(f->family);

	return r->family == f->family && memcmp(r->lo, f->a, n) <= 0 &&
	       memcmp(f->a, r->hi, n) <= 0;
}

static bool ranges_have(const struct peer_range *r, size_t n, const struct addr_form *f)
{
	for (size_t i = 0; i < n; i++)
		if (range_has(&r[i], f))
			return true;
	return false;
}

/* An IPv4 or IPv6 address; IPv6 may be written in brackets. */
static int parse_addr(const char *s, int *family, uint8_t a[16])
{
	char buf[INET6_ADDRSTRLEN + 2];
	size_t n = strlen(s);

	memset(a, 0, 16);
	if (n >= 2 && s[0] == '[' && s[n - 1] == ']' && n - 2 < sizeof(buf)) {
		memcpy(buf, s + 1, n - 2);
		buf[n - 2] = 0;
		s = buf;
		if (inet_pton(AF_INET6, s, a) != 1)
			return -EINVAL;
		*family = AF_INET6;
		return 0;
	}
	if (inet_pton(AF_INET, s, a) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, a) == 1) {
		*family = AF_INET6;
		return 0;
	}
	return -EINVAL;
}

static int parse_prefix(const char *s, int max)
{
	char *end;
	long v;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 0 || v > max)
		return -EINVAL;
	return (int)v;
}

static int range_cidr(struct peer_range *r, char *addr, const char *plen, const char **why)
{
	int bits;

	if (parse_addr(addr, &r->family, r->lo)) {
		*why = "not an IPv4 or IPv6 address before '/'; accepted: " PEER_RANGE_ACCEPTED;
		return -EINVAL;
	}
	bits = parse_prefix(plen, addr_len(r->family) * 8);
	if (bits < 0) {
		*why = r->family == AF_INET ? "prefix length must be 0-32 for IPv4"
					    : "prefix length must be 0-128 for IPv6";
		return -EINVAL;
	}
	memcpy(r->hi, r->lo, 16);
	for (int i = 0; i < addr_len(r->family); i++) {
		int keep = bits - i * 8;
		uint8_t mask = keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));

		r->lo[i] &= mask;
		r->hi[i] |= (uint8_t)~mask;
	}
	return 0;
}

static int range_span(struct peer_range *r, char *lo, char *hi, const char **why)
{
	int fam_hi;

	if (parse_addr(lo, &r->family, r->lo) || parse_addr(hi, &fam_hi, r->hi)) {
		*why = "not an IPv4 or IPv6 address on each side of '-'; accepted: "
		       PEER_RANGE_ACCEPTED;
		return -EINVAL;
	}
	if (fam_hi != r->family) {
		*why = "both ends of a range must be of one family (IPv4 or IPv6)";
		return -EINVAL;
	}
	if (memcmp(r->lo, r->hi, addr_len(r->family)) > 0) {
		*why = "the first address of a range must not be above the last";
		return -EINVAL;
	}
	return 0;
}

/* ::ffff:a.b.c.d-::ffff:e.f.g.h means a.b.c.d-e.f.g.h: the peer is
 * checked as the IPv4 it embeds. */
static void range_unmap(struct peer_range *r)
{
	if (r->family != AF_INET6 || memcmp(r->lo, pfx_mapped, 12) ||
	    memcmp(r->hi, pfx_mapped, 12))
		return;
	r->family = AF_INET;
	memmove(r->lo, r->lo + 12, 4);
	memmove(r->hi, r->hi + 12, 4);
	memset(r->lo + 4, 0, 12);
	memset(r->hi + 4, 0, 12);
}

int peer_range_parse(const char *s, struct peer_range *r, const char **why)
{
	char buf[128], *t, *sep;
	const char *dummy;
	int rc;

	if (!why)
		why = &dummy;
	if (!s || strlen(s) >= sizeof(buf)) {
		*why = "too long; accepted: " PEER_RANGE_ACCEPTED;
		return -EINVAL;
	}
	strcpy(buf, s);
	t = conf_line_trim(buf);
	memset(r, 0, sizeof(*r));
	if ((sep = strchr(t, '/'))) {
		*sep = 0;
		rc = range_cidr(r, conf_line_trim(t), conf_line_trim(sep + 1), why);
	} else if ((sep = strchr(t, '-'))) {
		*sep = 0;
		rc = range_span(r, conf_line_trim(t), conf_line_trim(sep + 1), why);
	} else {
		rc = parse_addr(t, &r->family, r->lo) ? -EINVAL : 0;
		memcpy(r->hi, r->lo, 16);
		if (rc)
			*why = "not an IPv4 or IPv6 address; accepted: " PEER_RANGE_ACCEPTED;
	}
	if (rc)
		return rc;
	range_unmap(r);
	return 0;
}

/* ---- the filter ---- */

/* Strings first, then the pre-parsed ranges; *count gets the total. */
static int parse_ranges(const char *key, const char *const *in, size_t n,
			const struct peer_range *pre, size_t n_pre,
			struct peer_range **out, size_t *count, char *err, size_t errlen)
{
	const char *why;

	*count = n + n_pre;
	if (!*count)
		return 0;
	*out = calloc(*count, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (size_t i = 0; i < n_pre; i++) {
		(*out)[n + i] = pre[i];
		range_unmap(&(*out)[n + i]);
	}
	for (size_t i = 0; i < n; i++) {
		if (peer_range_parse(in[i], &(*out)[i], &why) == 0)
			continue;
		if (err)
			snprintf(err, errlen, "%s '%s': %s", key, in[i], why);
		return -EINVAL;
	}
	return 0;
}

int peer_filter_add_self(struct peer_filter *f, const stun_sockaddr *a)
{
	struct addr_form forms[MAX_FORMS];
	struct self_addr *s;
	int n = peer_forms(a, forms);

	if (!n)
		return -EAFNOSUPPORT;
	if (f->n_self == f->cap_self) {
		size_t cap = f->cap_self ? f->cap_self * 2 : 8;
		struct self_addr *p = realloc(f->self, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		f->self = p;
		f->cap_self = cap;
	}
	s = &f->self[f->n_self++];
	/* an own address written as IPv4-mapped is that IPv4 address */
	s->f = (n == 2 && !memcmp(forms[0].a, pfx_mapped, 12)) ? forms[1] : forms[0];
	s->port = peer_port(a);
	return 0;
}

static int add_interfaces(struct peer_filter *f)
{
	struct ifaddrs *ifa, *i;
	int rc = 0;

	if (getifaddrs(&ifa))
		return -errno;
	for (i = ifa; i && !rc; i = i->ifa_next) {
		stun_sockaddr a;

		if (!i->ifa_addr || (i->ifa_addr->sa_family != AF_INET &&
				     i->ifa_addr->sa_family != AF_INET6))
			continue;
		memset(&a, 0, sizeof(a));
		memcpy(&a, i->ifa_addr, i->ifa_addr->sa_family == AF_INET ?
			sizeof(a.in4) : sizeof(a.in6));
		a.in4.sin_port = 0;
		rc = peer_filter_add_self(f, &a);
	}
	freeifaddrs(ifa);
	return rc;
}

int peer_filter_new(const struct peer_filter_params *p, struct peer_filter **out,
		    char *err, size_t errlen)
{
	struct peer_filter *f = calloc(1, sizeof(*f));
	int rc;

	if (!f)
		return -ENOMEM;
	f->allow_loopback = p->allow_loopback;
	rc = parse_ranges("allowed-peer-ip", p->allowed, p->n_allowed, p->allowed_ranges,
			  p->n_allowed_ranges, &f->allowed, &f->n_allowed, err, errlen);
	if (!rc)
		rc = parse_ranges("denied-peer-ip", p->denied, p->n_denied, p->denied_ranges,
				  p->n_denied_ranges, &f->denied, &f->n_denied, err, errlen);
	for (size_t i = 0; !rc && i < p->n_self; i++)
		rc = peer_filter_add_self(f, &p->self[i]);
	if (!rc && p->self_interfaces)
		rc = add_interfaces(f);
	if (rc)
		goto out;
	*out = f;
	return 0;
out:
	peer_filter_free(f);
	return rc;
}

void peer_filter_free(struct peer_filter *f)
{
	if (!f)
		return;
	free(f->allowed);
	free(f->denied);
	free(f->self);
	free(f);
}

static bool is_self(const struct peer_filter *f, const struct addr_form *form,
		    uint16_t port, bool loopback_ok)
{
	int n = addr_len(form->family);

	for (size_t i = 0; i < f->n_self; i++) {
		const struct self_addr *s = &f->self[i];

		if (s->f.family != form->family || memcmp(s->f.a, form->a, n))
			continue;
		/* allow-loopback-peers: an own loopback address is refused
		 * only on the ports the server itself listens on */
		if (!loopback_ok || (s->port && s->port == port))
			return true;
	}
	return false;
}

/* The verdict for one form (steps 1-4 of peer_filter.h). */
static enum peer_reason check_form(const struct peer_filter *f,
				   const struct addr_form *form, uint16_t port)
{
	enum peer_reason r;
	bool loopback_ok;

	if (ranges_have(f->allowed, f->n_allowed, form))
		return PEER_OK;
	if (ranges_have(f->denied, f->n_denied, form))
		return PEER_DENY_DENIED_RANGE;
	r = deny_default(form);
	loopback_ok = r == PEER_DENY_LOOPBACK && f->allow_loopback;
	if (r != PEER_OK && !loopback_ok)
		return r;
	if (is_self(f, form, port, loopback_ok))
		return PEER_DENY_SELF;
	return PEER_OK;
}

enum peer_reason peer_filter_check(const struct peer_filter *f, const stun_sockaddr *peer)
{
	struct addr_form forms[MAX_FORMS];
	int n = peer_forms(peer, forms);
	uint16_t port = peer_port(peer);

	if (!n)
		return PEER_DENY_BAD_FAMILY;
	/* RFC 8656 s21.2 leaves this to policy: refuse when any spelling
	 * of the address is refused (CVE-2020-26262, CVE-2026-27624). */
	for (int i = 0; i < n; i++) {
		enum peer_reason r = check_form(f, &forms[i], port);

		if (r != PEER_OK)
			return r;
	}
	return PEER_OK;
}
