/* dispatch: the STUN request pipeline and the method table. */
#include "dispatch.h"

#include <string.h>

#include "binding.h"
#include "log.h"
#include "rdv_proto.h"
#include "rdv_service.h"
#include "turn_dispatch.h"

typedef void (*request_fn)(struct worker *w, const struct stun_msg *m, const struct stun_in *in,
			   struct stun_out *out);
typedef void (*indication_fn)(struct worker *w, const struct stun_msg *m, const struct stun_in *in);

struct method_row {
	uint16_t method;
	request_fn request;       /* NULL: 400 */
	indication_fn indication; /* NULL: dropped */
};

/* TURN (RFC 8656, RFC 6062) and rendezvous methods add their rows here. */
static const struct method_row methods[] = {
	{ STUN_METHOD_BINDING, binding_request, binding_indication },
	{ STUN_METHOD_ALLOCATE, turn_dispatch_request, NULL },
	{ STUN_METHOD_REFRESH, turn_dispatch_request, NULL },
	{ STUN_METHOD_SEND, NULL, turn_dispatch_send },
	{ STUN_METHOD_CREATE_PERMISSION, turn_dispatch_request, NULL },
	{ STUN_METHOD_CHANNEL_BIND, turn_dispatch_request, NULL },
	{ STUN_METHOD_CONNECT, turn_dispatch_request, NULL },
	{ STUN_METHOD_CONNECTION_BIND, turn_dispatch_request, NULL },
	{ RDV_METHOD_REGISTER, rdv_service_request, NULL },
	{ RDV_METHOD_REFRESH, rdv_service_request, NULL },
	{ RDV_METHOD_CONNECT, rdv_service_request, NULL },
	{ RDV_METHOD_ANSWER, rdv_service_request, NULL },
};

static const struct method_row *find_method(uint16_t method)
{
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (methods[i].method == method)
			return &methods[i];
	return NULL;
}

void dispatch_response_init(struct worker *w, struct stun_builder *b, const struct stun_msg *m,
			    struct stun_out *out, uint8_t cls)
{
	uint8_t tid16[16];

	(void)w;
	if (!m->classic) {
		stun_build_init(b, out->buf, out->cap, m->method, cls, m->tid);
		return;
	}
	/* RFC 3489 s11.1: the 128-bit transaction ID is echoed whole. */
	memcpy(tid16, m->raw + 4, 16);
	stun_build_init_classic(b, out->buf, out->cap, m->method, cls, tid16);
}

void dispatch_response_software(struct worker *w, struct stun_builder *b)
{
	/* RFC 8489 s14.14: SOFTWARE SHOULD be included by servers. */
	if (!w->cfg->no_software_attribute)
		stun_build_str(b, STUN_ATTR_SOFTWARE, STUND_SOFTWARE);
}

void dispatch_response_end(struct worker *w, struct stun_builder *b, const struct stun_msg *m,
			   struct stun_out *out, const uint8_t *key, size_t keylen)
{
	int len;

	(void)w;
	if (key)
		stun_build_mi(b, key, keylen);
	/* RFC 8489 s14.7 / RFC 5780 s6.1: FINGERPRINT mirrors the request. */
	if (m->fp_off && !m->classic)
		stun_build_fingerprint(b);
	len = stun_build_finish(b);
	if (len < 0) {
		log_msg(LOG_ERROR, "building a %s response: %s", stun_method_name(m->method),
			stun_strerror(len));
		out->len = 0;
		return;
	}
	out->len = (size_t)len;
}

void dispatch_error(struct worker *w, const struct stun_msg *m, struct stun_out *out,
		    uint16_t code, const char *reason)
{
	struct stun_builder b;

	dispatch_response_init(w, &b, m, out, STUN_CLASS_ERROR);
	stun_build_error(&b, code, reason);
	dispatch_response_software(w, &b);
	dispatch_response_end(w, &b, m, out, NULL, 0);
	metrics_error(&w->metrics, code);
}

void dispatch_unknown(struct worker *w, const struct stun_msg *m, struct stun_out *out,
		      const uint16_t *types, size_t n)
{
	struct stun_builder b;

	dispatch_response_init(w, &b, m, out, STUN_CLASS_ERROR);
	stun_build_error(&b, STUN_ERR_UNKNOWN_ATTRIBUTE, NULL);
	stun_build_unknown(&b, types, n);
	dispatch_response_software(w, &b);
	dispatch_response_end(w, &b, m, out, NULL, 0);
	metrics_error(&w->metrics, STUN_ERR_UNKNOWN_ATTRIBUTE);
}

static void drop(struct worker *w, const struct stun_in *in, enum drop_reason why,
		 const char *detail)
{
	metrics_drop(&w->metrics, why);
	log_peer(LOG_INFO, &in->peer->sa, "%s: dropped (%s%s%s)", transport_name(in->tp),
		 metrics_drop_name(why), detail ? ": " : "", detail ? detail : "");
}

/* RFC 8489 s6.3: a message failing the checks is discarded. */
static int decode(struct worker *w, const struct stun_in *in, struct stun_msg *m)
{
	int r = stun_msg_parse(m, in->buf, in->len);

	if (r == STUN_E_FINGERPRINT) {
		drop(w, in, DROP_BAD_FINGERPRINT, NULL);
		return r;
	}
	if (r) {
		drop(w, in, DROP_MALFORMED, stun_strerror(r));
		return r;
	}
	metrics_msg(&w->metrics, m->method, m->cls);
	if (m->cls == STUN_CLASS_SUCCESS || m->cls == STUN_CLASS_ERROR) {
		drop(w, in, DROP_UNEXPECTED_RESPONSE, stun_method_name(m->method));
		return -1;
	}
	return 0;
}

static bool rate_ok(struct worker *w, const struct stun_in *in)
{
	if (in->tp != TP_UDP && in->tp != TP_DTLS)
		return true;
	if (ratelimit_allow(&w->rl_all, in->peer, ev_now(w->loop), w->cfg->rate_limit))
		return true;
	drop(w, in, DROP_RATE_LIMIT, NULL);
	return false;
}

static void indication(struct worker *w, const struct stun_msg *m, const struct stun_in *in)
{
	const struct method_row *row = find_method(m->method);

	/* RFC 8489 s6.3.2: unknown comprehension-required attributes in an
	 * indication: discard it. */
	if (m->n_unknown_required || !row || !row->indication) {
		drop(w, in, DROP_INDICATION, stun_method_name(m->method));
		return;
	}
	row->indication(w, m, in);
}

/* Over UDP an unauthenticated response may not be much larger than the
 * request, or the server becomes an amplifier for spoofed sources. */
static void amplification_guard(struct worker *w, const struct stun_in *in, struct stun_out *out)
{
	if (in->tp != TP_UDP || out->authenticated || !out->len)
		return;
	if (out->len <= in->len * DISPATCH_AMP_FACTOR + DISPATCH_AMP_SLACK)
		return;
	drop(w, in, DROP_AMPLIFICATION, NULL);
	out->len = 0;
}

void dispatch_stun(struct worker *w, const struct stun_in *in, struct stun_out *out)
{
	const struct method_row *row;
	struct stun_msg m;

	out->len = 0;
	out->from = in->laddr;
	out->to = *in->peer;
	out->authenticated = false;
	if (decode(w, in, &m))
		return;
	if (m.cls == STUN_CLASS_INDICATION) {
		indication(w, &m, in);
		return;
	}
	if (!rate_ok(w, in))
		return;
	/* RFC 8489 s6.3.1: unknown comprehension-required attributes: 420. */
	if (m.n_unknown_required) {
		dispatch_unknown(w, &m, out, m.unknown_required, m.n_unknown_required);
		return;
	}
	row = find_method(m.method);
	if (!row || !row->request) {
		dispatch_error(w, &m, out, STUN_ERR_BAD_REQUEST, "Unknown method");
		return;
	}
	row->request(w, &m, in, out);
	amplification_guard(w, in, out);
}
