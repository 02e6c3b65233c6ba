/* binding: Binding requests, RFC 5780 behaviour discovery. */
#include "binding.h"

#include <string.h>

#include "log.h"

struct binding_plan {
	int from;               /* laddr index the response is sent from */
	stun_sockaddr to;       /* where it goes */
	bool rfc5780;           /* the request used RFC 5780 attributes */
	size_t padding;         /* PADDING bytes to send back */
};

static const struct laddr *laddr_at(const struct worker *w, int i)
{
	return i >= 0 ? &w->shared->laddrs.a[i] : NULL;
}

/* RFC 5780 s6.1, Table 1: the source for each CHANGE-REQUEST combination. */
static int changed_source(const struct laddr *la, uint32_t flags, int here)
{
	bool ip = flags & STUN_CHANGE_IP, port = flags & STUN_CHANGE_PORT;

	if (ip && port)
		return la->alt_both;
	if (ip)
		return la->alt_ip;
	if (port)
		return la->alt_port;
	return here;
}

static bool have_alternate(const struct worker *w, const struct stun_in *in)
{
	const struct laddr *la = laddr_at(w, in->laddr);

	/* RFC 5780 s6: alternates exist only for UDP here (the TCP sockets
	 * cannot answer from another address on the same connection). */
	return la && in->tp == TP_UDP && la->alt_both >= 0;
}

/* The checks of RFC 5780 s6.1 and s7, in order. Returns 0 to answer with
 * plan, or sends an error / drops and returns -1. */
static int plan_response(struct worker *w, const struct stun_msg *m, const struct stun_in *in,
			 struct stun_out *out, struct binding_plan *p)
{
	const struct config *cfg = w->cfg;
	bool change = stun_msg_has(m, STUN_ATTR_CHANGE_REQUEST);
	bool rport = stun_msg_has(m, STUN_ATTR_RESPONSE_PORT);
	bool pad = stun_msg_has(m, STUN_ATTR_PADDING);
	static const uint16_t change_type = STUN_ATTR_CHANGE_REQUEST;

	p->from = in->laddr;
	p->to = *in->peer;
	p->rfc5780 = change || rport || pad;
	p->padding = 0;
	/* RFC 5780 s6: no alternate address: 420 to any CHANGE-REQUEST. */
	if (change && !have_alternate(w, in)) {
		dispatch_unknown(w, m, out, &change_type, 1);
		return -1;
	}
	/* s6.1: PADDING with RESPONSE-PORT: 400. */
	if (pad && rport) {
		dispatch_error(w, m, out, STUN_ERR_BAD_REQUEST, "PADDING with RESPONSE-PORT");
		return -1;
	}
	if (rport && (in->tp != TP_UDP || m->response_port == 0)) {
		dispatch_error(w, m, out, STUN_ERR_BAD_REQUEST,
			       in->tp != TP_UDP ? "RESPONSE-PORT needs UDP" : "RESPONSE-PORT 0");
		return -1;
	}
	if (pad && m->padding.len > cfg->max_padding) {
		metrics_drop(&w->metrics, DROP_PADDING);
		dispatch_error(w, m, out, STUN_ERR_BAD_REQUEST, "PADDING too large");
		return -1;
	}
	/* These make us send elsewhere, from elsewhere or more: their own
	 * per-source budget. */
	if (p->rfc5780 && (in->tp == TP_UDP || in->tp == TP_DTLS) &&
	    !ratelimit_allow(&w->rl_redirect, in->peer, ev_now(w->loop), cfg->rate_limit_redirect)) {
		metrics_drop(&w->metrics, DROP_REDIRECT_RATE_LIMIT);
		log_peer(LOG_INFO, &in->peer->sa, "Binding: redirect rate limit, dropped");
		return -1;
	}
	if (change)
		p->from = changed_source(laddr_at(w, in->laddr), m->change_request, in->laddr);
	if (rport) /* s7.5: to the source IP, at RESPONSE-PORT. */
		p->to.in4.sin_port = htons(m->response_port);
	/* s6.1: PADDING in the response; as long as the request's (bounded
	 * above), rounded up to a multiple of four. */
	if (pad)
		p->padding = ((size_t)m->padding.len + 3) & ~(size_t)3;
	return 0;
}

static void add_padding(struct stun_builder *b, size_t len)
{
	uint8_t *v = stun_build_reserve(b, STUN_ATTR_PADDING, len);

	if (v)
		memset(v, 0, len);
}

/* RFC 3489 s11.2: MAPPED-ADDRESS, SOURCE-ADDRESS, CHANGED-ADDRESS. */
static void build_classic(struct worker *w, struct stun_builder *b, const struct stun_in *in,
			  const struct binding_plan *p)
{
	const struct laddr *here = laddr_at(w, in->laddr);
	const struct laddr *from = laddr_at(w, p->from);
	const struct laddr *other = laddr_at(w, here ? here->alt_both : -1);

	stun_build_addr(b, STUN_ATTR_MAPPED_ADDRESS, in->peer);
	if (from && !from->wildcard)
		stun_build_addr(b, STUN_ATTR_SOURCE_ADDRESS, &from->addr);
	if (other && in->tp == TP_UDP)
		stun_build_addr(b, STUN_ATTR_CHANGED_ADDRESS, &other->addr);
}

static void build_modern(struct worker *w, struct stun_builder *b, const struct stun_in *in,
			 const struct binding_plan *p)
{
	const struct laddr *here = laddr_at(w, in->laddr);
	const struct laddr *from = laddr_at(w, p->from);
	const struct laddr *other = laddr_at(w, here ? here->alt_both : -1);
	const stun_sockaddr *origin = from && !from->wildcard ? &from->addr : NULL;
	bool alt = have_alternate(w, in);

	/* A wildcard socket answers from the address the request reached;
	 * TLS/DTLS sockets have their own port: the listener says which. */
	if (from && p->from == in->laddr && in->local)
		origin = in->local;
	/* RFC 8489 s14.2 */
	stun_build_xor_addr(b, STUN_ATTR_XOR_MAPPED_ADDRESS, in->peer);
	/* RFC 5780 s6.1: both MAPPED-ADDRESS and XOR-MAPPED-ADDRESS. */
	if (alt || p->rfc5780)
		stun_build_addr(b, STUN_ATTR_MAPPED_ADDRESS, in->peer);
	/* s6.1: RESPONSE-ORIGIN, the address the response is sent from. */
	if (origin)
		stun_build_addr(b, STUN_ATTR_RESPONSE_ORIGIN, origin);
	/* s7.4: OTHER-ADDRESS only with a second IP address: Ca:Cp. */
	if (alt && other)
		stun_build_addr(b, STUN_ATTR_OTHER_ADDRESS, &other->addr);
	if (p->padding)
		add_padding(b, p->padding);
}

void binding_request(struct worker *w, const struct stun_msg *m, const struct stun_in *in,
		     struct stun_out *out)
{
	struct binding_plan p;
	struct stun_builder b;

	if (plan_response(w, m, in, out, &p))
		return;
	dispatch_response_init(w, &b, m, out, STUN_CLASS_SUCCESS);
	if (m->classic)
		build_classic(w, &b, in, &p);
	else
		build_modern(w, &b, in, &p);
	dispatch_response_software(w, &b);
	dispatch_response_end(w, &b, m, out, NULL, 0);
	out->from = p.from;
	out->to = p.to;
}

void binding_indication(struct worker *w, const struct stun_msg *m, const struct stun_in *in)
{
	(void)w;
	(void)m;
	(void)in;
}
