/* turn_methods: the TURN requests (RFC 8656 s7-s10, s12; RFC 6156), each
 * handler reading top-down as the RFC's numbered checks. A handler returns
 * 0 having built the success attributes, or the STUN error code. */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "turn_internal.h"

#define RELAY_BIND_TRIES 8


/* ---- shared checks -------------------------------------------------------- */

static bool has(const struct turn_req *r, uint16_t attr)
{
	return stun_msg_has(r->m, attr);
}

static int family_of_wire(uint8_t f)
{
	return f == STUN_FAMILY_IPV4 ? AF_INET : f == STUN_FAMILY_IPV6 ? AF_INET6 : -1;
}

static int errno_to_code(int err)
{
	switch (err) {
	case -EEXIST: return STUN_ERR_ALLOCATION_MISMATCH;
	case -EDQUOT: return STUN_ERR_ALLOCATION_QUOTA;
	case -EAFNOSUPPORT: return STUN_ERR_ADDRESS_FAMILY;
	case -EINVAL: return STUN_ERR_BAD_REQUEST;
	case -EPERM: return STUN_ERR_FORBIDDEN;
	}
	return STUN_ERR_INSUFFICIENT_CAPACITY; /* ENOSPC, ENOBUFS, ENOENT, ... */
}

/* s5: later requests must use the username that created the allocation. */
static int check_user(const struct turn_req *r, const struct turn_alloc *a)
{
	size_t len = 0;
	const char *name;

	if (!r->authed || !a->user)
		return 0;
	name = turn_user_name(a->user, &len);
	if (len != r->ar.username_len || memcmp(name, r->ar.username, len))
		return STUN_ERR_WRONG_CREDENTIALS;
	return 0;
}

/* s5: every request but Allocate needs the 5-tuple's allocation (437),
 * made by the same user (441). */
static int find_alloc(struct turn_req *r, struct turn_alloc **out)
{
	struct turn_alloc *a = turn_alloc_find(r->ts->table, &r->ft);

	if (!a || !a->active)
		return STUN_ERR_ALLOCATION_MISMATCH;
	*out = a;
	return check_user(r, a);
}

static bool alloc_has_family(const struct turn_alloc *a, int family)
{
	for (int i = 0; i < a->n_relayed; i++)
		if (a->relayed[i].family == family)
			return true;
	return false;
}

/* s10.2 / s12.2: the peer's family is one of the allocation's (443), and
 * local policy allows the peer (403). */
static int check_peer(struct turn_req *r, const struct turn_alloc *a,
		      const stun_sockaddr *peer)
{
	if (!alloc_has_family(a, peer->sa.sa_family))
		return STUN_ERR_PEER_ADDRESS_FAMILY;
	if (turn_peer_check(r->ts, peer))
		return STUN_ERR_FORBIDDEN;
	return 0;
}

/* ---- Allocate (s7.2) ------------------------------------------------------ */

struct alloc_plan {
	int family[STUN_MAX_RELAYED_ADDRS];
	int n_family;
	unsigned flags;        /* RELAY_PORT_* */
};

/* The relayed address as announced: external-ip replaces the relay-ip of
 * its family (behind a 1:1 NAT). */
static void announced(const struct turn_service *ts, const struct turn_addr_key *k,
		      stun_sockaddr *out)
{
	const struct turn_shared *sh = ts->sh;
	uint16_t port = k->port;

	turn_addr_key_to_sa(k, out);
	if (!sh->has_external || sh->external.sa.sa_family != k->family)
		return;
	*out = sh->external;
	if (out->sa.sa_family == AF_INET)
		out->in4.sin_port = htons(port);
	else
		out->in6.sin6_port = htons(port);
}

static int allocate_answer(struct turn_req *r, struct turn_alloc *a)
{
	const struct turn_relay *rl = turn_alloc_ext(a);

	for (int i = 0; i < a->n_relayed; i++) {
		stun_sockaddr sa;

		announced(r->ts, &a->relayed[i], &sa);
		stun_build_xor_addr(&r->b, STUN_ATTR_XOR_RELAYED_ADDRESS, &sa);
	}
	/* s7.2 item 9: a partly met dual-stack request says why */
	if (rl->addr_err_code)
		stun_build_address_error(&r->b, rl->addr_err_family, rl->addr_err_code, NULL);
	stun_build_u32(&r->b, STUN_ATTR_LIFETIME, turn_alloc_remaining(a, r->now));
	if (a->token)
		stun_build_u64(&r->b, STUN_ATTR_RESERVATION_TOKEN, a->token);
	stun_build_xor_addr(&r->b, STUN_ATTR_XOR_MAPPED_ADDRESS, &r->link->client);
	return 0;
}

/* Item 3: REQUESTED-TRANSPORT present (400), UDP or TCP (442). */
static int check_transport(const struct turn_req *r)
{
	if (!has(r, STUN_ATTR_REQUESTED_TRANSPORT))
		return STUN_ERR_BAD_REQUEST;
	if (r->m->requested_transport == IPPROTO_UDP)
		return 0;
	if (r->m->requested_transport != IPPROTO_TCP)
		return STUN_ERR_UNSUPPORTED_TRANSPORT;
	/* RFC 6062 s5.1: over TCP or TLS only (2.), without DONT-FRAGMENT,
	 * EVEN-PORT or RESERVATION-TOKEN (3.); one address family here */
	if (r->link->proto != IPPROTO_TCP)
		return STUN_ERR_BAD_REQUEST;
	if (has(r, STUN_ATTR_DONT_FRAGMENT) || has(r, STUN_ATTR_EVEN_PORT) ||
	    has(r, STUN_ATTR_RESERVATION_TOKEN) || has(r, STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY))
		return STUN_ERR_BAD_REQUEST;
	return 0;
}

/* Item 5: a RESERVATION-TOKEN excludes EVEN-PORT and both family
 * attributes (400); its validity is checked when the port is taken. */
static int check_token(const struct turn_req *r)
{
	if (!has(r, STUN_ATTR_RESERVATION_TOKEN))
		return 0;
	if (has(r, STUN_ATTR_EVEN_PORT) || has(r, STUN_ATTR_REQUESTED_ADDRESS_FAMILY) ||
	    has(r, STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY))
		return STUN_ERR_BAD_REQUEST;
	return 0;
}

/* Item 7: the requested family, IPv4 by default, must be served (440). */
static int check_family(const struct turn_req *r, struct alloc_plan *p)
{
	int fam = AF_INET;

	if (has(r, STUN_ATTR_REQUESTED_ADDRESS_FAMILY))
		fam = family_of_wire(r->m->requested_family);
	if (fam < 0 || !relay_ports_has_family(r->ts->sh->ports, fam))
		return STUN_ERR_ADDRESS_FAMILY;
	p->family[0] = fam;
	p->n_family = 1;
	return 0;
}

/* Items 8 and 9: EVEN-PORT with R excludes a dual allocation (400); the
 * additional family can only be IPv6 (400). */
static int check_even_and_additional(const struct turn_req *r, struct alloc_plan *p)
{
	bool aaf = has(r, STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY);

	if (has(r, STUN_ATTR_EVEN_PORT)) {
		p->flags = r->m->even_port_reserve ? RELAY_PORT_RESERVE_NEXT : RELAY_PORT_EVEN;
		if (r->m->even_port_reserve && aaf)
			return STUN_ERR_BAD_REQUEST;
	}
	if (!aaf)
		return 0;
	if (r->m->additional_family != STUN_FAMILY_IPV6)
		return STUN_ERR_BAD_REQUEST;
	p->family[p->n_family++] = AF_INET6;
	return 0;
}

/* Take a relayed address of family and bind its socket as a->relayed[i];
 * another process may hold a port, so a few are tried. */
static int take_port(struct turn_req *r, struct turn_alloc *a, int i, int family,
		     unsigned flags)
{
	struct relay_ports *ports = r->ts->sh->ports;
	stun_sockaddr addr;
	int err = -ENOSPC;

	for (int t = 0; t < RELAY_BIND_TRIES; t++) {
		uint64_t token = 0;

		err = relay_ports_get(ports, family, flags, r->now, &addr, &token);
		if (err)
			return err;
		if (a->transport == IPPROTO_TCP)
			err = turn_tcp_listen(r->ts, a, &addr); /* RFC 6062 s5.1 item 4 */
		else
			err = turn_relay_open(r->ts, a, i, &addr);
		if (!err) {
			a->token = token;
			return 0;
		}
		relay_ports_put(ports, &addr);
		if (err != -EADDRINUSE)
			break;
	}
	return err == -EADDRINUSE ? -ENOSPC : err;
}

/* Item 5 / the RESERVATION-TOKEN bullet: the reserved address, or 508. */
static int take_reserved(struct turn_req *r, struct turn_alloc *a)
{
	struct relay_ports *ports = r->ts->sh->ports;
	stun_sockaddr addr;
	int err = relay_ports_redeem(ports, r->m->reservation_token, r->now, &addr);

	if (err)
		return err;
	err = turn_relay_open(r->ts, a, 0, &addr);
	if (err)
		relay_ports_put(ports, &addr);
	return err;
}

/* The relayed addresses: the first must be had; the additional one of a
 * dual allocation may fail, which ADDRESS-ERROR-CODE then says (item 9). */
static int take_relays(struct turn_req *r, struct turn_alloc *a, const struct alloc_plan *p)
{
	struct turn_relay *rl = turn_alloc_ext(a);
	int err;

	if (has(r, STUN_ATTR_RESERVATION_TOKEN))
		err = take_reserved(r, a);
	else
		err = take_port(r, a, 0, p->family[0], p->flags);
	if (err || p->n_family < 2)
		return err;
	err = take_port(r, a, 1, p->family[1], 0);
	if (err) {
		rl->addr_err_family = STUN_FAMILY_IPV6;
		rl->addr_err_code = err == -EAFNOSUPPORT ? STUN_ERR_ADDRESS_FAMILY
							 : STUN_ERR_INSUFFICIENT_CAPACITY;
	}
	return 0;
}

static void relay_init(struct turn_req *r, struct turn_alloc *a)
{
	struct turn_relay *rl = turn_alloc_ext(a);

	rl->ts = r->ts;
	rl->link = *r->link;
	rl->bucket_at = r->now;
	rl->max_bps = r->ts->max_bps; /* a reload changes new allocations only */
	rl->bucket_bytes = (double)rl->max_bps;
	memcpy(a->tid, r->m->tid, STUN_TID_LEN);
	a->transport = r->m->requested_transport;
	a->dont_fragment = has(r, STUN_ATTR_DONT_FRAGMENT);
	if (!r->authed)
		return;
	a->pw_alg = (uint8_t)r->ar.pw_alg;
	a->key_len = (uint8_t)r->ar.key_len;
	memcpy(a->key, r->ar.key, r->ar.key_len);
}

/* Item 10 (quotas) and the creation itself. */
static int create_allocation(struct turn_req *r, const struct alloc_plan *p)
{
	struct turn_service *ts = r->ts;
	const char *user = r->authed ? r->ar.username : "";
	size_t ulen = r->authed ? r->ar.username_len : 0;
	struct turn_alloc *a = NULL;
	uint32_t lifetime;
	int err;

	err = turn_alloc_new(ts->table, &r->ft, user, ulen, &a);
	if (err)
		return errno_to_code(err);
	relay_init(r, a);
	err = take_relays(r, a, p);
	if (err) {
		turn_alloc_free(ts->table, a);
		return errno_to_code(err);
	}
	lifetime = turn_table_lifetime(ts->table, has(r, STUN_ATTR_LIFETIME), r->m->lifetime);
	err = turn_alloc_activate(ts->table, a, lifetime ? lifetime : TURN_DEFAULT_LIFETIME,
				  r->now);
	if (err) {
		turn_alloc_free(ts->table, a);
		return STUN_ERR_INSUFFICIENT_CAPACITY;
	}
	turn_count(&ts->ctr.allocs_created, 1);
	turn_timer_update(ts);
	return allocate_answer(r, a);
}

/* RFC 8656 s7.2 */
static int handle_allocate(struct turn_req *r)
{
	struct turn_alloc *a = turn_alloc_find(r->ts->table, &r->ft);
	struct alloc_plan p = { 0 };
	int code;

	/* Item 1 (authentication) ran before. The s7.2 note: a retransmitted
	 * Allocate that created the allocation gets its success again. */
	if (a && a->active && !memcmp(a->tid, r->m->tid, STUN_TID_LEN)) {
		if ((code = check_user(r, a)))
			return code;
		return allocate_answer(r, a);
	}
	/* 2. the 5-tuple is in use */
	if (a)
		return STUN_ERR_ALLOCATION_MISMATCH;
	/* 3. REQUESTED-TRANSPORT */
	if ((code = check_transport(r)))
		return code;
	/* 4. DONT-FRAGMENT is supported (s14: IP_MTU_DISCOVER), nothing to do */
	/* 5. RESERVATION-TOKEN with other attributes */
	if ((code = check_token(r)))
		return code;
	/* 6. both family attributes */
	if (has(r, STUN_ATTR_REQUESTED_ADDRESS_FAMILY) &&
	    has(r, STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY))
		return STUN_ERR_BAD_REQUEST;
	/* 7. the family is supported */
	if (!has(r, STUN_ATTR_RESERVATION_TOKEN) && (code = check_family(r, &p)))
		return code;
	/* 8. and 9. EVEN-PORT and ADDITIONAL-ADDRESS-FAMILY */
	if ((code = check_even_and_additional(r, &p)))
		return code;
	/* 10. quotas; 508 when no address can be had */
	return create_allocation(r, &p);
}

/* ---- Refresh (s8.2) -------------------------------------------------------- */

static int handle_refresh(struct turn_req *r)
{
	struct turn_service *ts = r->ts;
	struct turn_alloc *a = NULL;
	uint32_t lifetime;
	int code;

	if ((code = find_alloc(r, &a)))
		return code;
	/* REQUESTED-ADDRESS-FAMILY must match the allocation's (443) */
	if (has(r, STUN_ATTR_REQUESTED_ADDRESS_FAMILY) &&
	    !alloc_has_family(a, family_of_wire(r->m->requested_family)))
		return STUN_ERR_PEER_ADDRESS_FAMILY;
	/* the "desired lifetime"; zero deletes */
	lifetime = turn_table_lifetime(ts->table, has(r, STUN_ATTR_LIFETIME), r->m->lifetime);
	if (!lifetime) {
		turn_alloc_free(ts->table, a);
		turn_count(&ts->ctr.allocs_deleted, 1);
	} else {
		turn_alloc_refresh(ts->table, a, lifetime, r->now);
		turn_timer_update(ts);
	}
	stun_build_u32(&r->b, STUN_ATTR_LIFETIME, lifetime);
	return 0;
}

/* ---- CreatePermission (s10.2) ------------------------------------------------ */

static int handle_create_permission(struct turn_req *r)
{
	struct turn_service *ts = r->ts;
	struct turn_alloc *a = NULL;
	int code, err;

	if ((code = find_alloc(r, &a)))
		return code;
	/* at least one XOR-PEER-ADDRESS (400; invalid ones failed parsing) */
	if (!r->m->n_xor_peer)
		return STUN_ERR_BAD_REQUEST;
	/* each one of the allocation's family (443) and allowed (403) */
	for (int i = 0; i < r->m->n_xor_peer; i++)
		if ((code = check_peer(r, a, &r->m->xor_peer[i])))
			return code;
	/* install or refresh each (s9); capacity: 508 */
	for (int i = 0; i < r->m->n_xor_peer; i++) {
		struct turn_addr_key k;

		turn_addr_key_set(&k, &r->m->xor_peer[i]);
		err = turn_perm_install(turn_table_perms(ts->table), &a->ps, &k, r->now);
		if (err && a->ps.n_perms >= TURN_PER_ALLOC)
			turn_count(&ts->ctr.limited[TL_PERMS_PER_ALLOC], 1);
		if (err)
			return STUN_ERR_INSUFFICIENT_CAPACITY;
	}
	turn_alloc_schedule(ts->table, a, r->now + TURN_PERMISSION_LIFETIME);
	turn_timer_update(ts);
	return 0;
}

/* ---- ChannelBind (s12.2) ------------------------------------------------------ */

static int handle_channel_bind(struct turn_req *r)
{
	struct turn_service *ts = r->ts;
	const stun_sockaddr *peer = &r->m->xor_peer[0];
	struct turn_alloc *a = NULL;
	struct turn_addr_key k;
	int code, err;

	if ((code = find_alloc(r, &a)))
		return code;
	/* CHANNEL-NUMBER and XOR-PEER-ADDRESS both present (400); no
	 * channels on a TCP allocation (RFC 6062 s4: data connections) */
	if (!has(r, STUN_ATTR_CHANNEL_NUMBER) || !r->m->n_xor_peer ||
	    a->transport != IPPROTO_UDP)
		return STUN_ERR_BAD_REQUEST;
	/* the peer's family (443) and local policy (403) */
	if ((code = check_peer(r, a, peer)))
		return code;
	/* range, number and address not bound elsewhere, 5-minute rule: 400;
	 * out of entries: 508. Installs the permission too. */
	turn_addr_key_set(&k, peer);
	err = turn_chan_bind(turn_table_perms(ts->table), &a->ps, r->m->channel_number, &k,
			     r->now);
	if (err == -ENOSPC && (a->ps.n_chans >= TURN_PER_ALLOC || a->ps.n_perms >= TURN_PER_ALLOC))
		turn_count(&ts->ctr.limited[a->ps.n_chans >= TURN_PER_ALLOC ? TL_CHANS_PER_ALLOC
									   : TL_PERMS_PER_ALLOC], 1);
	if (err)
		return err == -EINVAL ? STUN_ERR_BAD_REQUEST : STUN_ERR_INSUFFICIENT_CAPACITY;
	turn_alloc_schedule(ts->table, a, r->now + TURN_PERMISSION_LIFETIME);
	turn_timer_update(ts);
	return 0;
}

/* ---- RFC 6062 ------------------------------------------------------------------ */

/* RFC 6062 s5.2: the control connection's allocation (437), then
 * turn_tcp.c; the answer comes when the connection is made. */
static int handle_connect(struct turn_req *r)
{
	struct turn_alloc *a = NULL;
	int code = find_alloc(r, &a);

	return code ? code : turn_tcp_connect(r, a);
}

/* RFC 6062 s5.4: on a new connection, which has no allocation */
static int handle_connection_bind(struct turn_req *r)
{
	return turn_tcp_connection_bind(r);
}

/* ---- the request pipeline ------------------------------------------------------ */

static enum turn_refusal refusal_of(int code)
{
	switch (code) {
	case STUN_ERR_UNAUTHORIZED: return TR_UNAUTHORIZED;
	case STUN_ERR_FORBIDDEN: return TR_FORBIDDEN;
	case STUN_ERR_ALLOCATION_MISMATCH: return TR_MISMATCH;
	case STUN_ERR_STALE_NONCE: return TR_STALE_NONCE;
	case STUN_ERR_ADDRESS_FAMILY: return TR_FAMILY;
	case STUN_ERR_WRONG_CREDENTIALS: return TR_WRONG_CREDENTIALS;
	case STUN_ERR_UNSUPPORTED_TRANSPORT: return TR_TRANSPORT;
	case STUN_ERR_PEER_ADDRESS_FAMILY: return TR_PEER_FAMILY;
	case STUN_ERR_ALLOCATION_QUOTA: return TR_QUOTA;
	case STUN_ERR_INSUFFICIENT_CAPACITY: return TR_CAPACITY;
	case STUN_ERR_SERVER_ERROR: return TR_SERVER_ERROR;
	}
	return TR_BAD_REQUEST;
}

static int dispatch(struct turn_req *r)
{
	switch (r->m->method) {
	case STUN_METHOD_ALLOCATE: return handle_allocate(r);
	case STUN_METHOD_REFRESH: return handle_refresh(r);
	case STUN_METHOD_CREATE_PERMISSION: return handle_create_permission(r);
	case STUN_METHOD_CHANNEL_BIND: return handle_channel_bind(r);
	case STUN_METHOD_CONNECT: return handle_connect(r);
	case STUN_METHOD_CONNECTION_BIND: return handle_connection_bind(r);
	}
	return STUN_ERR_BAD_REQUEST;
}

/* RFC 8489 s9.2.4 through auth.c; 0 when authenticated (or no-auth),
 * else the error code (the result says what to send). Without credentials
 * configured the relay would be open to anyone: refused with 403 (a 401
 * would invite credentials that cannot exist) unless the operator set
 * no-auth (RFC 8656 s7.2 item 1: only on a local network). */
static int authenticate(struct turn_req *r)
{
	struct turn_service *ts = r->ts;

	if (!ts->auth && ts->no_auth)
		return 0;
	if (!ts->auth) {
		r->reason = TURN_NO_CREDENTIALS_REASON;
		return STUN_ERR_FORBIDDEN;
	}
	auth_check(ts->auth, r->m, (uint64_t)r->now, &r->link->client, &r->ar, ts->auth_ctr);
	if (r->ar.code)
		return r->ar.code;
	r->authed = true;
	return 0;
}

static void build_error(struct turn_req *r, int code, bool from_auth)
{
	stun_build_init(&r->b, r->out, r->cap, r->m->method, STUN_CLASS_ERROR, r->m->tid);
	if (from_auth) {
		auth_build_error(&r->ar, &r->b);
		return;
	}
	stun_build_error(&r->b, (uint16_t)code, r->reason);
}

/* SOFTWARE (s5: Allocate and Refresh), integrity when authenticated,
 * FINGERPRINT when the request had one. */
static int finish(struct turn_req *r)
{
	uint16_t meth = r->m->method;

	if (r->ts->sh->software && (meth == STUN_METHOD_ALLOCATE || meth == STUN_METHOD_REFRESH))
		stun_build_str(&r->b, STUN_ATTR_SOFTWARE, r->ts->sh->software);
	if (r->authed)
		auth_sign(&r->ar, &r->b);
	if (stun_msg_has(r->m, STUN_ATTR_FINGERPRINT))
		stun_build_fingerprint(&r->b);
	return stun_build_finish(&r->b);
}

static int process(struct turn_req *r)
{
	int code = authenticate(r);
	bool from_auth = code != 0 && !r->reason;

	/* dispatch.c answered unknown comprehension-required attributes (420) */
	if (!code) {
		stun_build_init(&r->b, r->out, r->cap, r->m->method, STUN_CLASS_SUCCESS,
				r->m->tid);
		code = dispatch(r);
	}
	if (code == TURN_ANSWER_LATER)
		return 0;
	/* No need to keep: a 401 (stateless nonces) and an Allocate success,
	 * which the allocation answers again from its transaction ID (s7.2
	 * note). Keeps the cache for answers that could change. */
	r->regenerable = code == STUN_ERR_UNAUTHORIZED ||
			 (!code && r->m->method == STUN_METHOD_ALLOCATE);
	if (code) {
		turn_count(&r->ts->ctr.refused[refusal_of(code)], 1);
		if (code != STUN_ERR_UNAUTHORIZED || r->m->mi_off || r->m->mi256_off)
			log_peer(LOG_INFO, &r->link->client.sa, "turn: %s refused: %d %s",
				 stun_method_name(r->m->method), code,
				 stun_error_reason((uint16_t)code));
		build_error(r, code, from_auth);
	}
	return finish(r);
}

int turn_handle_request(struct turn_service *ts, const struct turn_link *link,
			const struct stun_msg *req, uint8_t *out, size_t cap)
{
	struct turn_req *r, rq;
	const uint8_t *cached;
	size_t clen = 0;
	int len;

	r = &rq;
	memset(r, 0, offsetof(struct turn_req, ar));
	r->ts = ts;
	r->link = link;
	r->m = req;
	r->out = out;
	r->cap = cap;
	r->now = ev_now(ts->loop);
	turn_5tuple_set(&r->ft, link->proto, &link->client, &link->local);
	/* RFC 8489 s6.3.1: a retransmission gets the same response */
	cached = txcache_get(ts->tx, &r->ft, req->tid, r->now, &clen);
	if (cached && clen <= cap) {
		memcpy(out, cached, clen);
		return (int)clen;
	}
	len = process(r);
	if (len > 0 && !r->regenerable)
		txcache_put(ts->tx, &r->ft, req->tid, out, (size_t)len, r->now);
	if (ts->auth)
		auth_result_wipe(&r->ar);
	return len;
}
