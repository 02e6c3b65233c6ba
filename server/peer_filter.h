/* peer_filter: which peer addresses the relay may send to (RFC 8656 s21.2
 * "Relaying to a Disallowed Address" left to policy; coturn's
 * CVE-2020-26262 and CVE-2026-27624 were bypasses of exactly this).
 *
 * Every address is checked in each form it can reach: as written, and as
 * the IPv4 address it embeds (IPv4-mapped ::ffff:0:0/96, IPv4-translated
 * ::ffff:0:0:0/96, IPv4-compatible ::/96, 6to4 2002::/16, Teredo
 * 2001::/32 server and obfuscated client, NAT64 64:ff9b::/96). A peer is
 * refused when any form is refused.
 *
 * Per form, in order (coturn's semantics):
 *   1. in an allowed-peer-ip range  -> allowed (overrides 2-4);
 *   2. in a denied-peer-ip range    -> refused;
 *   3. a default denial (loopback, unspecified, multicast, link-local,
 *      site-local, broadcast, reserved, 0/8, and 6to4 and Teredo
 *      themselves, RFC 8656 s21.4) -> refused, except loopback when
 *      allow-loopback-peers is set;
 *   4. one of the server's own addresses -> refused (with
 *      allow-loopback-peers a loopback own address is refused only on the
 *      exact ports the server listens on);
 *   otherwise allowed.
 *
 * A filter is immutable once built and shared read-only by the workers;
 * replace it whole on reload. Counting is the caller's (peer_counters). */
#ifndef STUND_PEER_FILTER_H
#define STUND_PEER_FILTER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stun_msg.h"

/* Why a peer is refused; PEER_OK when it is not. */
enum peer_reason {
	PEER_OK = 0,
	PEER_DENY_UNSPECIFIED,  /* 0.0.0.0, :: */
	PEER_DENY_LOOPBACK,     /* 127/8, ::1 */
	PEER_DENY_THIS_NETWORK, /* 0/8 other than 0.0.0.0 */
	PEER_DENY_LINK_LOCAL,   /* 169.254/16, fe80::/10 */
	PEER_DENY_SITE_LOCAL,   /* fec0::/10 (deprecated, RFC 3879) */
	PEER_DENY_MULTICAST,    /* 224/4, ff00::/8 */
	PEER_DENY_BROADCAST,    /* 255.255.255.255 */
	PEER_DENY_RESERVED,     /* 240/4 */
	PEER_DENY_TUNNEL,       /* 6to4 2002::/16, Teredo 2001::/32 (RFC 8656 s21.4) */
	PEER_DENY_SELF,         /* one of the server's own addresses */
	PEER_DENY_DENIED_RANGE, /* a denied-peer-ip range */
	PEER_DENY_BAD_FAMILY,   /* not AF_INET / AF_INET6 */
	PEER_REASON_COUNT
};

/* "loopback", "self", ... (for logs and metric labels). */
const char *peer_reason_name(enum peer_reason r);

/* One range of addresses of one family, bounds inclusive, network order.
 * IPv4 ranges use the first 4 bytes of lo/hi. */
struct peer_range {
	int family; /* AF_INET or AF_INET6 */
	uint8_t lo[16], hi[16];
};

/* Parse "1.2.3.4", "1.2.3.4-1.2.3.9", "10.0.0.0/8", "2001:db8::1",
 * "2001:db8::1-2001:db8::ff", "2001:db8::/32". A range written in
 * IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes the IPv4 range it means.
 * Returns 0, or -EINVAL with *why saying what is wrong and what is
 * accepted (a static string, suitable for a config error message). */
int peer_range_parse(const char *s, struct peer_range *r, const char **why);
#define PEER_RANGE_ACCEPTED \
	"an address (192.0.2.1, 2001:db8::1), a range of one family " \
	"(192.0.2.1-192.0.2.9) or a CIDR block (10.0.0.0/8, 2001:db8::/32)"

/* Inputs from the config. Own addresses with port 0 mean the whole
 * address; with a port, that address is still refused whole unless it is
 * loopback and allow-loopback-peers is set. */
struct peer_filter_params {
	bool allow_loopback;          /* allow-loopback-peers */
	const char *const *allowed;   /* allowed-peer-ip values */
	size_t n_allowed;
	const char *const *denied;    /* denied-peer-ip values */
	size_t n_denied;
	const struct peer_range *allowed_ranges; /* the same, already parsed */
	size_t n_allowed_ranges;
	const struct peer_range *denied_ranges;
	size_t n_denied_ranges;
	const stun_sockaddr *self;    /* relay-ip, listening-ip, external-ip */
	size_t n_self;
	bool self_interfaces;         /* also every local interface address
				       * (getifaddrs), for wildcard listeners */
};

struct peer_filter;

/* Build a filter. On a bad range returns -EINVAL and writes
 * "denied-peer-ip 'VALUE': WHY" into err (if err != NULL); -ENOMEM and
 * the getifaddrs errno are the other failures. */
int peer_filter_new(const struct peer_filter_params *p, struct peer_filter **out,
		    char *err, size_t errlen);
void peer_filter_free(struct peer_filter *f);

/* Add one more own address (e.g. an ephemeral relay address known only
 * after bind). Not thread-safe: call before sharing the filter. */
int peer_filter_add_self(struct peer_filter *f, const stun_sockaddr *a);

/* Is this a 6to4 or Teredo address? RFC 8656 s21.4 recommends refusing
 * Allocate and ChannelBind from such client addresses too. */
bool peer_addr_tunneled(const stun_sockaddr *a);

/* The verdict for a peer (address and port). */
enum peer_reason peer_filter_check(const struct peer_filter *f, const stun_sockaddr *peer);

/* Refusals by reason; one per worker (single writer), read by metrics. */
struct peer_counters {
	_Atomic uint64_t by_reason[PEER_REASON_COUNT]; /* [PEER_OK]: allowed */
};

static inline void peer_counters_add(struct peer_counters *c, enum peer_reason r)
{
	if (!c || (unsigned)r >= PEER_REASON_COUNT)
		return;
	atomic_store_explicit(&c->by_reason[r],
			      atomic_load_explicit(&c->by_reason[r], memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

#endif
