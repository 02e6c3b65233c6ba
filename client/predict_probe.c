/* predict_probe: prediction on the session's socket (see predict_probe.h). */
#include "predict_probe.h"

#include <errno.h>
#include <string.h>
#include <ev.h>

static uint16_t port_of(const stun_sockaddr *a)
{
	return ntohs(a->sa.sa_family == AF_INET6 ? a->in6.sin6_port : a->in4.sin_port);
}

static void probe_cb(struct stun_client *c, const struct stun_txn_result *r, void *arg)
{
	struct predict_probe *p = arg;
	uint16_t ports[2];

	(void)c;
	p->done = true;
	if (r->status != STUN_TXN_SUCCESS || !stun_msg_has(r->msg, STUN_ATTR_XOR_MAPPED_ADDRESS))
		return;
	ports[0] = p->first;
	ports[1] = p->last = port_of(&r->msg->xor_mapped);
	p->alloc = predict_classify(ports, 2, &p->delta);
}

int predict_probe_run(struct predict_probe *p, struct stun_client *sc,
		      const stun_sockaddr *other, uint16_t first)
{
	static const struct stun_rto rto = { 250, 3, 4 };
	struct stun_request req = { .method = STUN_METHOD_BINDING, .dest = *other, .rto = &rto,
				    .fingerprint = true, .cb = probe_cb, .arg = p };
	struct ev_loop *loop = stun_client_loop(sc);
	int err;

	memset(p, 0, sizeof(*p));
	p->first = first;
	p->sc = sc;
	err = stun_client_request(sc, &req, NULL);
	if (err < 0)
		return err;
	while (!p->done)
		ev_run(loop, EVRUN_ONCE);
	return p->alloc == PREDICT_ALLOC_UNKNOWN ? -EHOSTUNREACH : 0;
}

unsigned predict_probe_add(struct predict_probe *p, struct ice *ice, const stun_sockaddr *srflx,
			   const stun_sockaddr *server, const struct predict_opts *o)
{
	struct ice_cand c[PREDICT_MAX_WINDOW];
	unsigned n;

	if (!o->enabled || p->alloc != PREDICT_ALLOC_SEQUENTIAL)
		return 0;
	n = predict_candidates(srflx, stun_client_local(p->sc), server, p->last, p->delta,
			       o->window, c);
	p->n_pred = 0;
	for (unsigned i = 0; i < n; i++)
		if (ice_add_local(ice, &c[i]) == 0)
			p->n_pred++;
	return p->n_pred;
}

unsigned predict_probe_punch(const struct predict_probe *p, struct ice *ice, int fd,
			     const struct predict_opts *o)
{
	const struct ice_checklist *cl = ice_get_checklist(ice);
	static const uint8_t payload[4] = { 0xff, 'n', 'k', 'p' }; /* not STUN, not ChannelData */
	unsigned n = 0;

	if (!o->enabled || !o->ttl || p->alloc != PREDICT_ALLOC_SEQUENTIAL)
		return 0;
	for (unsigned i = 0; i < cl->n_remote; i++) {
		if (cl->remote[i].type == ICE_CAND_RELAY)
			continue;
		if (predict_punch_low_ttl(fd, &cl->remote[i].addr, o->ttl, payload,
					  sizeof(payload)) == 0)
			n++;
	}
	return n;
}

bool predict_probe_selected(struct ice *ice)
{
	const struct ice_cand *r = ice_selected_remote(ice), *l;
	const stun_sockaddr *mapped = ice_selected_mapped(ice);
	unsigned n;

	if (!r)
		return false;
	if (r->type == ICE_CAND_PREDICTED)
		return true;
	n = ice_local_candidates(ice, &l);
	return mapped && predict_is_predicted(mapped, l, n);
}
