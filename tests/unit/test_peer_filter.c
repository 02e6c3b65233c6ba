/* Unit tests of server/peer_filter: every spelling of a forbidden address
 * is refused, public addresses pass, allow/deny ranges and own addresses. */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <string.h>

#include "peer_filter.h"

static stun_sockaddr addr(const char *ip, uint16_t port)
{
	stun_sockaddr a;

	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, ip, &a.in4.sin_addr) == 1) {
		a.in4.sin_family = AF_INET;
		a.in4.sin_port = htons(port);
		return a;
	}
	CU_ASSERT_FATAL(inet_pton(AF_INET6, ip, &a.in6.sin6_addr) == 1);
	a.in6.sin6_family = AF_INET6;
	a.in6.sin6_port = htons(port);
	return a;
}

static struct peer_filter *filter(const struct peer_filter_params *p)
{
	struct peer_filter *f = NULL;
	char err[256] = "";
	int rc = peer_filter_new(p, &f, err, sizeof(err));

	if (rc)
		fprintf(stderr, "peer_filter_new: %d %s\n", rc, err);
	CU_ASSERT_FATAL(rc == 0 && f);
	return f;
}

static enum peer_reason check(const struct peer_filter *f, const char *ip, uint16_t port)
{
	stun_sockaddr a = addr(ip, port);

	return peer_filter_check(f, &a);
}

#define EXPECT(f, ip, reason) do { \
	enum peer_reason r_ = check((f), (ip), 5000); \
	if (r_ != (reason)) \
		fprintf(stderr, "\n%s:%d: %s -> %s, want %s\n", __FILE__, __LINE__, \
			(ip), peer_reason_name(r_), peer_reason_name(reason)); \
	CU_ASSERT_EQUAL(r_, (reason)); \
} while (0)

#define REFUSED(f, ip) do { \
	enum peer_reason r_ = check((f), (ip), 5000); \
	if (r_ == PEER_OK) \
		fprintf(stderr, "\n%s:%d: %s allowed\n", __FILE__, __LINE__, (ip)); \
	CU_ASSERT_NOT_EQUAL(r_, PEER_OK); \
} while (0)

/* Every spelling of loopback and of "this host" the issue lists. */
static const char *const loopback_spellings[] = {
	"127.0.0.1", "127.255.255.254", "127.1.2.3", "::1",
	"::ffff:127.0.0.1",            /* IPv4-mapped */
	"::ffff:7f00:1",               /* the same, hex */
	"::127.0.0.1",                 /* IPv4-compatible */
	"::ffff:0:127.0.0.1",          /* IPv4-translated (SIIT) */
	"64:ff9b::127.0.0.1",          /* NAT64 well-known prefix */
	"64:ff9b::7f00:1",
	"2002:7f00:1::1",              /* 6to4 of 127.0.0.1 */
	"2002:7f00:1:0:0:0:0:0",
	"2001:0:7f00:1::1",            /* Teredo with server 127.0.0.1 */
	"2001:0:4136:e378:8000:63bf:80ff:fffe", /* Teredo client ~80ff:fffe = 127.0.0.1 */
};

static const char *const unspecified_spellings[] = {
	"0.0.0.0", "::", "::ffff:0.0.0.0", "::ffff:0:0.0.0.0", "64:ff9b::",
	"2002::1", "2001:0:0:0::ffff:ffff",
};

static void test_default_refuses_loopback_spellings(void)
{
	struct peer_filter_params p = { 0 };
	struct peer_filter *f = filter(&p);

	for (size_t i = 0; i < sizeof(loopback_spellings) / sizeof(*loopback_spellings); i++)
		REFUSED(f, loopback_spellings[i]);
	for (size_t i = 0; i < sizeof(unspecified_spellings) / sizeof(*unspecified_spellings); i++)
		REFUSED(f, unspecified_spellings[i]);
	/* the reason names what the address really is */
	EXPECT(f, "127.0.0.1", PEER_DENY_LOOPBACK);
	EXPECT(f, "::1", PEER_DENY_LOOPBACK);
	EXPECT(f, "::ffff:127.0.0.1", PEER_DENY_LOOPBACK);
	EXPECT(f, "::127.0.0.1", PEER_DENY_LOOPBACK);
	EXPECT(f, "64:ff9b::7f00:1", PEER_DENY_LOOPBACK);
	EXPECT(f, "0.0.0.0", PEER_DENY_UNSPECIFIED);
	EXPECT(f, "::", PEER_DENY_UNSPECIFIED);
	EXPECT(f, "::ffff:0.0.0.0", PEER_DENY_UNSPECIFIED);
	peer_filter_free(f);
}

static void test_default_refuses_special_ranges(void)
{
	struct peer_filter_params p = { 0 };
	struct peer_filter *f = filter(&p);

	EXPECT(f, "0.1.2.3", PEER_DENY_THIS_NETWORK);
	EXPECT(f, "169.254.169.254", PEER_DENY_LINK_LOCAL);
	EXPECT(f, "::ffff:169.254.169.254", PEER_DENY_LINK_LOCAL);
	EXPECT(f, "64:ff9b::a9fe:a9fe", PEER_DENY_LINK_LOCAL);
	EXPECT(f, "fe80::1", PEER_DENY_LINK_LOCAL);
	EXPECT(f, "febf:ffff::1", PEER_DENY_LINK_LOCAL);
	EXPECT(f, "fec0::1", PEER_DENY_SITE_LOCAL);
	EXPECT(f, "feff::1", PEER_DENY_SITE_LOCAL);
	EXPECT(f, "224.0.0.1", PEER_DENY_MULTICAST);
	EXPECT(f, "239.255.255.250", PEER_DENY_MULTICAST);
	EXPECT(f, "::ffff:224.0.0.251", PEER_DENY_MULTICAST);
	EXPECT(f, "ff02::1", PEER_DENY_MULTICAST);
	EXPECT(f, "ff0e::1", PEER_DENY_MULTICAST);
	EXPECT(f, "240.0.0.1", PEER_DENY_RESERVED);
	EXPECT(f, "254.255.255.255", PEER_DENY_RESERVED);
	EXPECT(f, "255.255.255.255", PEER_DENY_BROADCAST);
	EXPECT(f, "::ffff:255.255.255.255", PEER_DENY_BROADCAST);
	/* RFC 8656 s21.4: 6to4 and Teredo refused even with public IPv4s */
	EXPECT(f, "2002:0808:0808::1", PEER_DENY_TUNNEL);
	EXPECT(f, "2001:0:4136:e378:8000:63bf:3fff:fdd2", PEER_DENY_TUNNEL);
	peer_filter_free(f);
}

static void test_default_allows_public(void)
{
	static const char *const ok[] = {
		"8.8.8.8", "1.1.1.1", "198.51.100.7", "10.0.0.1", "192.168.1.1",
		"126.255.255.255", "128.0.0.1", "169.253.255.255", "169.255.0.1",
		"223.255.255.255", "2001:4860:4860::8888", "2001:db8::1",
		"2001:1::1", "::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "::8.8.8.8",
		"fc00::1", "fd12:3456::1", "2003::1",
	};
	struct peer_filter_params p = { 0 };
	struct peer_filter *f = filter(&p);

	for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++)
		EXPECT(f, ok[i], PEER_OK);
	peer_filter_free(f);
}

static void test_allow_loopback_only_loopback(void)
{
	struct peer_filter_params p = { .allow_loopback = true };
	struct peer_filter *f = filter(&p);

	EXPECT(f, "127.0.0.1", PEER_OK);
	EXPECT(f, "127.9.9.9", PEER_OK);
	EXPECT(f, "::1", PEER_OK);
	EXPECT(f, "::ffff:127.0.0.1", PEER_OK);
	EXPECT(f, "::127.0.0.1", PEER_OK);
	EXPECT(f, "64:ff9b::7f00:1", PEER_OK);
	/* only loopback: the rest stays refused (CVE-2020-26262 was 0.0.0.0) */
	EXPECT(f, "0.0.0.0", PEER_DENY_UNSPECIFIED);
	EXPECT(f, "::", PEER_DENY_UNSPECIFIED);
	EXPECT(f, "::ffff:0.0.0.0", PEER_DENY_UNSPECIFIED);
	EXPECT(f, "0.0.0.1", PEER_DENY_THIS_NETWORK);
	EXPECT(f, "169.254.1.1", PEER_DENY_LINK_LOCAL);
	EXPECT(f, "224.0.0.1", PEER_DENY_MULTICAST);
	EXPECT(f, "255.255.255.255", PEER_DENY_BROADCAST);
	EXPECT(f, "2002:7f00:1::1", PEER_DENY_TUNNEL);
	peer_filter_free(f);
}

static void test_tunnels_normalised_when_allowed(void)
{
	/* even when an admin allows the tunnel prefixes, the IPv4 they
	 * embed is checked like any other */
	const char *allowed[] = { "2002::/16", "2001::/32" };
	struct peer_filter_params p = { .allowed = allowed, .n_allowed = 2 };
	struct peer_filter *f = filter(&p);

	EXPECT(f, "2002:0808:0808::1", PEER_OK);
	EXPECT(f, "2002:7f00:1::1", PEER_DENY_LOOPBACK);
	EXPECT(f, "2002:a9fe:a9fe::1", PEER_DENY_LINK_LOCAL);
	EXPECT(f, "2002::1", PEER_DENY_UNSPECIFIED);
	EXPECT(f, "2002:e000:1::", PEER_DENY_MULTICAST);
	/* Teredo: server 65.54.227.120, client ~3fff:fdd2 = 192.0.2.45 */
	EXPECT(f, "2001:0:4136:e378:8000:63bf:3fff:fdd2", PEER_OK);
	EXPECT(f, "2001:0:4136:e378:8000:63bf:80ff:fffe", PEER_DENY_LOOPBACK);
	EXPECT(f, "2001:0:7f00:1:8000:63bf:3fff:fdd2", PEER_DENY_LOOPBACK);
	EXPECT(f, "2001:0:4136:e378:8000:63bf:5601:5601", PEER_DENY_LINK_LOCAL);
	peer_filter_free(f);
}

static void test_self_addresses(void)
{
	stun_sockaddr self[3] = {
		addr("198.51.100.10", 3478), addr("2001:db8::5", 0),
		addr("::ffff:203.0.113.9", 0),
	};
	struct peer_filter_params p = { .self = self, .n_self = 3 };
	struct peer_filter *f = filter(&p);
	stun_sockaddr extra = addr("192.0.2.77", 0);

	EXPECT(f, "198.51.100.10", PEER_DENY_SELF);       /* any port */
	EXPECT(f, "::ffff:198.51.100.10", PEER_DENY_SELF);
	EXPECT(f, "::198.51.100.10", PEER_DENY_SELF);
	EXPECT(f, "64:ff9b::198.51.100.10", PEER_DENY_SELF);
	EXPECT(f, "198.51.100.11", PEER_OK);
	EXPECT(f, "2001:db8::5", PEER_DENY_SELF);
	EXPECT(f, "2001:db8::6", PEER_OK);
	EXPECT(f, "203.0.113.9", PEER_DENY_SELF);
	EXPECT(f, "192.0.2.77", PEER_OK);
	CU_ASSERT_EQUAL(peer_filter_add_self(f, &extra), 0);
	EXPECT(f, "192.0.2.77", PEER_DENY_SELF);
	EXPECT(f, "::ffff:192.0.2.77", PEER_DENY_SELF);
	peer_filter_free(f);
}

static void test_self_loopback_with_allow_loopback(void)
{
	stun_sockaddr self[2] = { addr("127.0.0.1", 3478), addr("::1", 3478) };
	struct peer_filter_params p = { .allow_loopback = true, .self = self, .n_self = 2 };
	struct peer_filter *f = filter(&p);

	CU_ASSERT_EQUAL(check(f, "127.0.0.1", 40000), PEER_OK);
	CU_ASSERT_EQUAL(check(f, "127.0.0.1", 3478), PEER_DENY_SELF);
	CU_ASSERT_EQUAL(check(f, "::ffff:127.0.0.1", 3478), PEER_DENY_SELF);
	CU_ASSERT_EQUAL(check(f, "::1", 3478), PEER_DENY_SELF);
	CU_ASSERT_EQUAL(check(f, "::1", 3479), PEER_OK);
	peer_filter_free(f);
	/* without allow-loopback-peers it is loopback first */
	p.allow_loopback = false;
	f = filter(&p);
	CU_ASSERT_EQUAL(check(f, "127.0.0.1", 40000), PEER_DENY_LOOPBACK);
	peer_filter_free(f);
}

static void test_self_interfaces(void)
{
	struct peer_filter_params p = { .self_interfaces = true };
	struct peer_filter *f = filter(&p);
	struct ifaddrs *ifa, *i;
	int seen = 0;

	CU_ASSERT_FATAL(getifaddrs(&ifa) == 0);
	for (i = ifa; i; i = i->ifa_next) {
		stun_sockaddr a;

		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
			continue;
		memcpy(&a.in4, i->ifa_addr, sizeof(a.in4));
		if (a.in4.sin_addr.s_addr == htonl(INADDR_LOOPBACK))
			continue;
		a.in4.sin_port = htons(9);
		CU_ASSERT_NOT_EQUAL(peer_filter_check(f, &a), PEER_OK);
		seen++;
	}
	freeifaddrs(ifa);
	EXPECT(f, "8.8.8.8", PEER_OK);
	peer_filter_free(f);
	(void)seen; /* a machine may have only loopback */
}

static void test_denied_and_allowed_ranges(void)
{
	const char *denied[] = { "10.0.0.0/8", "192.0.2.10-192.0.2.20", "2001:db8::/32",
				 "198.51.100.1", "::ffff:172.16.0.0/108" };
	const char *allowed[] = { "10.5.0.0-10.5.0.255", "127.0.0.1", "2001:db8:1::/48",
				  "fe80::1", "::ffff:169.254.0.1" };
	struct peer_filter_params p = {
		.denied = denied, .n_denied = 5, .allowed = allowed, .n_allowed = 5,
	};
	struct peer_filter *f = filter(&p);

	EXPECT(f, "10.1.2.3", PEER_DENY_DENIED_RANGE);
	EXPECT(f, "::ffff:10.1.2.3", PEER_DENY_DENIED_RANGE);
	EXPECT(f, "64:ff9b::10.1.2.3", PEER_DENY_DENIED_RANGE);
	EXPECT(f, "10.5.0.7", PEER_OK);             /* allowed overrides denied */
	EXPECT(f, "10.5.1.0", PEER_DENY_DENIED_RANGE);
	EXPECT(f, "11.0.0.1", PEER_OK);
	EXPECT(f, "192.0.2.9", PEER_OK);
	EXPECT(f, "192.0.2.10", PEER_DENY_DENIED_RANGE);
	EXPECT(f, "192.0.2.20", PEER_DENY_DENIED_RANGE);
	EXPECT(f, "192.0.2.21", PEER_OK);
	EXPECT(f, "198.51.100.1", PEER_DENY_DENIED_RANGE);
	EXPECT(f, "198.51.100.2", PEER_OK);
	EXPECT(f, "172.16.4.4", PEER_DENY_DENIED_RANGE); /* mapped range = IPv4 */
	EXPECT(f, "172.32.0.1", PEER_OK);
	EXPECT(f, "2001:db8::1", PEER_DENY_DENIED_RANGE);
	EXPECT(f, "2001:db8:1::1", PEER_OK);
	EXPECT(f, "2001:db9::1", PEER_OK);
	/* allowed overrides the default denials, one address at a time */
	EXPECT(f, "127.0.0.1", PEER_OK);
	EXPECT(f, "::ffff:127.0.0.1", PEER_OK);
	EXPECT(f, "127.0.0.2", PEER_DENY_LOOPBACK);
	EXPECT(f, "fe80::1", PEER_OK);
	EXPECT(f, "fe80::2", PEER_DENY_LINK_LOCAL);
	EXPECT(f, "169.254.0.1", PEER_OK);
	EXPECT(f, "169.254.0.2", PEER_DENY_LINK_LOCAL);
	peer_filter_free(f);
}

static void test_deny_everything_allow_some(void)
{
	const char *denied[] = { "0.0.0.0/0", "::/0" };
	const char *allowed[] = { "203.0.113.0/24" };
	struct peer_filter_params p = {
		.denied = denied, .n_denied = 2, .allowed = allowed, .n_allowed = 1,
	};
	struct peer_filter *f = filter(&p);

	EXPECT(f, "8.8.8.8", PEER_DENY_DENIED_RANGE);
	EXPECT(f, "2001:4860::1", PEER_DENY_DENIED_RANGE);
	EXPECT(f, "203.0.113.200", PEER_OK);
	/* the IPv6 spelling is denied as written by ::/0 */
	EXPECT(f, "::ffff:203.0.113.200", PEER_DENY_DENIED_RANGE);
	peer_filter_free(f);
}

static void test_preparsed_ranges(void)
{
	struct peer_range den[2], al[1];
	struct peer_filter_params p = {
		.denied_ranges = den, .n_denied_ranges = 2,
		.allowed_ranges = al, .n_allowed_ranges = 1,
	};
	struct peer_filter *f;

	/* as a config parser may hand them over: mapped IPv6 not unmapped */
	memset(den, 0, sizeof(den));
	den[0].family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:10.0.0.0", den[0].lo);
	inet_pton(AF_INET6, "::ffff:10.255.255.255", den[0].hi);
	CU_ASSERT_EQUAL(peer_range_parse("2001:db8::/32", &den[1], NULL), 0);
	CU_ASSERT_EQUAL(peer_range_parse("127.0.0.5", &al[0], NULL), 0);
	f = filter(&p);
	EXPECT(f, "10.9.9.9", PEER_DENY_DENIED_RANGE);
	EXPECT(f, "2001:db8::9", PEER_DENY_DENIED_RANGE);
	EXPECT(f, "127.0.0.5", PEER_OK);
	EXPECT(f, "127.0.0.6", PEER_DENY_LOOPBACK);
	EXPECT(f, "11.0.0.1", PEER_OK);
	peer_filter_free(f);
}

static void range_ok(const char *s, int family, const char *lo, const char *hi)
{
	struct peer_range r;
	const char *why = NULL;
	uint8_t want[16] = { 0 };

	CU_ASSERT_EQUAL_FATAL(peer_range_parse(s, &r, &why), 0);
	CU_ASSERT_EQUAL(r.family, family);
	CU_ASSERT_FATAL(inet_pton(family, lo, want) == 1);
	CU_ASSERT_EQUAL(memcmp(r.lo, want, family == AF_INET ? 4 : 16), 0);
	CU_ASSERT_FATAL(inet_pton(family, hi, want) == 1);
	CU_ASSERT_EQUAL(memcmp(r.hi, want, family == AF_INET ? 4 : 16), 0);
}

static void range_bad(const char *s, const char *why_part)
{
	struct peer_range r;
	const char *why = NULL;

	CU_ASSERT_EQUAL(peer_range_parse(s, &r, &why), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(why);
	if (!strstr(why, why_part))
		fprintf(stderr, "\n'%s': why '%s' lacks '%s'\n", s, why, why_part);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, why_part));
}

static void test_range_parse(void)
{
	range_ok("192.0.2.1", AF_INET, "192.0.2.1", "192.0.2.1");
	range_ok("  192.0.2.1\t", AF_INET, "192.0.2.1", "192.0.2.1");
	range_ok("192.0.2.1-192.0.2.9", AF_INET, "192.0.2.1", "192.0.2.9");
	range_ok("192.0.2.1 - 192.0.2.9", AF_INET, "192.0.2.1", "192.0.2.9");
	range_ok("10.0.0.0/8", AF_INET, "10.0.0.0", "10.255.255.255");
	range_ok("10.1.2.3/8", AF_INET, "10.0.0.0", "10.255.255.255");
	range_ok("172.16.0.0/12", AF_INET, "172.16.0.0", "172.31.255.255");
	range_ok("0.0.0.0/0", AF_INET, "0.0.0.0", "255.255.255.255");
	range_ok("192.0.2.7/32", AF_INET, "192.0.2.7", "192.0.2.7");
	range_ok("2001:db8::/32", AF_INET6, "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff");
	range_ok("2001:db8::1-2001:db8::ff", AF_INET6, "2001:db8::1", "2001:db8::ff");
	range_ok("fe80::/10", AF_INET6, "fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	range_ok("::/0", AF_INET6, "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	range_ok("2001:db8::1/128", AF_INET6, "2001:db8::1", "2001:db8::1");
	range_ok("::ffff:10.0.0.0/104", AF_INET, "10.0.0.0", "10.255.255.255");
	range_ok("::ffff:10.0.0.1", AF_INET, "10.0.0.1", "10.0.0.1");

	range_bad("", "accepted");
	range_bad("banana", "accepted: an address");
	range_bad("1.2.3", "accepted");
	range_bad("1.2.3.4.5", "accepted");
	range_bad("192.0.2.9-192.0.2.1", "must not be above");
	range_bad("192.0.2.1-2001:db8::1", "one family");
	range_bad("192.0.2.1-", "each side");
	range_bad("-192.0.2.1", "each side");
	range_bad("10.0.0.0/33", "0-32");
	range_bad("10.0.0.0/-1", "0-32");
	range_bad("10.0.0.0/", "0-32");
	range_bad("10.0.0.0/8x", "0-32");
	range_bad("2001:db8::/129", "0-128");
	range_bad("/8", "before '/'");
	range_bad("10.0.0.0/8-10.0.0.9", "0-32");
}

static void test_new_reports_bad_range(void)
{
	const char *denied[] = { "10.0.0.0/8", "10.0.0.300" };
	const char *allowed[] = { "2001:db8::/200" };
	struct peer_filter_params p = { .denied = denied, .n_denied = 2 };
	struct peer_filter *f = NULL;
	char err[256] = "";

	CU_ASSERT_EQUAL(peer_filter_new(&p, &f, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NULL(f);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "denied-peer-ip '10.0.0.300'"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "accepted"));
	p = (struct peer_filter_params){ .allowed = allowed, .n_allowed = 1 };
	CU_ASSERT_EQUAL(peer_filter_new(&p, &f, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "allowed-peer-ip '2001:db8::/200'"));
}

static void test_bad_family_and_names(void)
{
	struct peer_filter_params p = { 0 };
	struct peer_filter *f = filter(&p);
	stun_sockaddr a;

	memset(&a, 0, sizeof(a));
	a.sa.sa_family = AF_UNIX;
	CU_ASSERT_EQUAL(peer_filter_check(f, &a), PEER_DENY_BAD_FAMILY);
	CU_ASSERT_EQUAL(peer_filter_add_self(f, &a), -EAFNOSUPPORT);
	for (int i = 0; i < PEER_REASON_COUNT; i++) {
		CU_ASSERT_PTR_NOT_NULL(peer_reason_name(i));
		for (int j = 0; j < i; j++)
			CU_ASSERT(strcmp(peer_reason_name(i), peer_reason_name(j)) != 0);
	}
	CU_ASSERT_STRING_EQUAL(peer_reason_name(PEER_REASON_COUNT), "unknown");
	peer_filter_free(f);
	peer_filter_free(NULL);
}

static void test_tunneled_and_counters(void)
{
	stun_sockaddr a = addr("2002:0808:0808::1", 1), b = addr("2001:0:1:2::3", 1),
		      c = addr("2001:db8::1", 1), d = addr("8.8.8.8", 1);
	struct peer_counters ctr = { 0 };

	CU_ASSERT(peer_addr_tunneled(&a));
	CU_ASSERT(peer_addr_tunneled(&b));
	CU_ASSERT(!peer_addr_tunneled(&c));
	CU_ASSERT(!peer_addr_tunneled(&d));
	peer_counters_add(&ctr, PEER_DENY_LOOPBACK);
	peer_counters_add(&ctr, PEER_DENY_LOOPBACK);
	peer_counters_add(&ctr, PEER_OK);
	peer_counters_add(&ctr, PEER_REASON_COUNT); /* ignored */
	peer_counters_add(NULL, PEER_OK);
	CU_ASSERT_EQUAL(ctr.by_reason[PEER_DENY_LOOPBACK], 2);
	CU_ASSERT_EQUAL(ctr.by_reason[PEER_OK], 1);
}

int main(void)
{
	CU_pSuite s;
	unsigned fails;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("peer_filter", NULL, NULL);
	CU_add_test(s, "default refuses every loopback spelling", test_default_refuses_loopback_spellings);
	CU_add_test(s, "default refuses special ranges", test_default_refuses_special_ranges);
	CU_add_test(s, "default allows public addresses", test_default_allows_public);
	CU_add_test(s, "allow-loopback-peers allows only loopback", test_allow_loopback_only_loopback);
	CU_add_test(s, "tunnel embeddings normalised when allowed", test_tunnels_normalised_when_allowed);
	CU_add_test(s, "own addresses", test_self_addresses);
	CU_add_test(s, "own loopback with allow-loopback-peers", test_self_loopback_with_allow_loopback);
	CU_add_test(s, "own interface addresses", test_self_interfaces);
	CU_add_test(s, "denied and allowed ranges", test_denied_and_allowed_ranges);
	CU_add_test(s, "deny everything, allow some", test_deny_everything_allow_some);
	CU_add_test(s, "pre-parsed ranges", test_preparsed_ranges);
	CU_add_test(s, "range parsing", test_range_parse);
	CU_add_test(s, "bad ranges name key and value", test_new_reports_bad_range);
	CU_add_test(s, "bad family, reason names", test_bad_family_and_names);
	CU_add_test(s, "tunneled clients, counters", test_tunneled_and_counters);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
