/* predict_probe: prediction on the session's socket (see predict_probe.h). */
#include "predict_probe.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <ev.h>

static void probe_cb(struct stun_client *c, const struct stun_txn_result *r, void *arg)
{
	struct predict_probe *p = arg;

	(void)c;
	p->done = true;
	if (r->status == STUN_TXN_SUCCESS && stun_msg_has(r->msg, STUN_ATTR_XOR_MAPPED_ADDRESS))
		p->ports[p->n_ports++] = stun_sockaddr_port(&r->msg->xor_mapped);
}

/* One Binding from the session's socket to dest; its mapped port goes to
 * p->ports[]. 0, or -EHOSTUNREACH without an answer. */
static int probe_one(struct predict_probe *p, const stun_sockaddr *dest)
{
	static const struct stun_rto rto = { 250, 3, 4 };
	struct stun_request req = { .method = STUN_METHOD_BINDING, .dest = *dest, .rto = &rto,
				    .fingerprint = true, .cb = probe_cb, .arg = p };
	unsigned n = p->n_ports;
	int err;

	p->done = false;
	err = stun_client_request(p->sc, &req, NULL);
	if (err < 0)
		return err;
	while (!p->done)
		ev_run(stun_client_loop(p->sc), EVRUN_ONCE);
	return p->n_ports > n ? 0 : -EHOSTUNREACH;
}

int predict_probe_run(struct predict_probe *p, struct stun_client *sc,
		      const stun_sockaddr *server, const stun_sockaddr *other, uint16_t first)
{
	stun_sockaddr third = *server;

	memset(p, 0, sizeof(*p));
	p->sc = sc;
	p->first = first;
	p->ports[p->n_ports++] = first;
	if (probe_one(p, other) < 0)
		return -EHOSTUNREACH;
	/* A third port, towards the server's IP on the other's port: two
	 * random ports can fall within PREDICT_MAX_DELTA of each other, three
	 * in a constant step hardly. The same port as towards the server
	 * itself: the mapping depends on the address only (RFC 4787 s4.1);
	 * then the two samples across addresses are what there is. */
	stun_sockaddr_set_port(&third, stun_sockaddr_port(other));
	if (p->ports[1] != first && probe_one(p, &third) == 0 && p->ports[2] == first)
		p->n_ports = 2;
	p->last = p->ports[p->n_ports - 1];
	p->alloc = predict_classify(p->ports, p->n_ports, &p->delta);
	return 0;
}

static void fresh_cb(struct stun_client *c, const struct stun_txn_result *r, void *arg)
{
	struct predict_probe *p = arg;
	void (*cb)(struct predict_probe *, void *) = p->fresh_cb;

	if (r->status == STUN_TXN_CANCELLED)
		return;
	if (r->status == STUN_TXN_SUCCESS && stun_msg_has(r->msg, STUN_ATTR_XOR_MAPPED_ADDRESS)) {
		p->last = stun_sockaddr_port(&r->msg->xor_mapped);
		p->stale = false;
	}
	p->fresh = NULL;
	stun_client_free(c); /* deferred while its callback runs */
	cb(p, p->fresh_arg);
}

int predict_probe_refresh(struct predict_probe *p, const stun_sockaddr *server,
			  void (*cb)(struct predict_probe *p, void *arg), void *arg)
{
	static const struct stun_rto rto = { 250, 3, 4 };
	struct stun_request req = { .method = STUN_METHOD_BINDING, .dest = *server, .rto = &rto,
				    .fingerprint = true, .cb = fresh_cb, .arg = p };
	stun_sockaddr bind_addr;
	int err;

	if (!p->sc || p->alloc != PREDICT_ALLOC_SEQUENTIAL || !p->stale)
		return 0;
	p->fresh_cb = cb;
	p->fresh_arg = arg;
	if (p->fresh) /* one in flight: its answer serves this caller too */
		return 1;
	bind_addr = *stun_client_bound(p->sc);
	stun_sockaddr_set_port(&bind_addr, 0);
	err = stun_client_open(stun_client_loop(p->sc), &bind_addr, &p->fresh);
	if (err < 0)
		return err;
	err = stun_client_request(p->fresh, &req, NULL);
	if (err < 0) {
		stun_client_free(p->fresh);
		p->fresh = NULL;
		return err;
	}
	return 1;
}

/* The birthday flag: our NAT's IP (with the port it gave towards the
 * server's other address, so it is not redundant with the srflx one). */
static unsigned add_flag(struct predict_probe *p, struct ice *ice, const stun_sockaddr *srflx,
			 const stun_sockaddr *server)
{
	struct ice_cand c = { .type = ICE_CAND_PREDICTED, .component = 1 };

	c.addr = *srflx;
	stun_sockaddr_set_port(&c.addr, p->last);
	c.base = *stun_client_local(p->sc);
	c.server = *server;
	ice_cand_finish(&c, 0);
	snprintf(c.foundation, sizeof(c.foundation), "%s", PREDICT_BIRTHDAY_FOUNDATION);
	return ice_add_local(ice, &c) == 0;
}

unsigned predict_probe_add(struct predict_probe *p, struct ice *ice, const stun_sockaddr *srflx,
			   const stun_sockaddr *server, const struct predict_opts *o)
{
	struct ice_cand c[PREDICT_MAX_WINDOW];
	unsigned n;

	if (o->enabled && p->alloc == PREDICT_ALLOC_RANDOM)
		return add_flag(p, ice, srflx, server);
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

static const uint8_t punch_payload[4] = { 0xff, 'n', 'k', 'p' }; /* not STUN, not ChannelData */

static int punch(int fd, const stun_sockaddr *dest, unsigned ttl)
{
	if (ttl)
		return predict_punch_low_ttl(fd, dest, ttl, punch_payload, sizeof(punch_payload));
	return sendto(fd, punch_payload, sizeof(punch_payload), 0, &dest->sa,
		      stun_sockaddr_len(dest)) < 0 ? -errno : 0;
}

unsigned predict_probe_cross(const struct predict_probe *p, struct ice *ice, int fd,
			     const struct predict_opts *o, uint16_t *to, uint16_t *from)
{
	const struct ice_checklist *cl = ice_get_checklist(ice);
	const struct ice_cand *g = NULL;
	uint16_t peer_last;
	int peer_delta;
	unsigned n, sent = 0;
	stun_sockaddr dest;

	if (!o->enabled || !o->cross || p->alloc != PREDICT_ALLOC_SEQUENTIAL || !p->n_pred)
		return 0;
	n = predict_peer_window(cl->remote, cl->n_remote, &peer_last, &peer_delta);
	if (!n)
		return 0;
	for (unsigned i = 0; i < cl->n_remote && !g; i++)
		if (cl->remote[i].type == ICE_CAND_PREDICTED)
			g = &cl->remote[i];
	/* gaps 0: nothing made a new mapping since the probes, on either side */
	n = predict_cross_window(p->last, p->delta, 0, peer_last, peer_delta, 0,
				 n < p->n_pred ? n : p->n_pred, to, from);
	dest = g->addr;
	for (unsigned i = 0; i < n; i++) {
		stun_sockaddr_set_port(&dest, to[i]);
		if (punch(fd, &dest, o->ttl) == 0)
			sent++;
	}
	return sent == n ? n : 0;
}

static const struct ice_cand *remote_of(const struct ice_checklist *cl, enum ice_cand_type t,
				       const char *foundation)
{
	for (unsigned i = 0; i < cl->n_remote; i++)
		if (cl->remote[i].type == t &&
		    (!foundation || !strcmp(cl->remote[i].foundation, foundation)))
			return &cl->remote[i];
	return NULL;
}

unsigned predict_probe_punch(const struct predict_probe *p, struct ice *ice, int fd,
			     const struct predict_opts *o)
{
	const struct ice_checklist *cl = ice_get_checklist(ice);
	unsigned n = 0;
	const struct ice_cand *flag;

	/* A random-port peer (its birthday flag) and our mapping is stable: one
	 * datagram to its IP now opens an address-dependent filter (RFC 4787
	 * s5) for the checks its new mappings will send, before they arrive. */
	if (o->enabled && p->alloc == PREDICT_ALLOC_EIM &&
	    (flag = remote_of(cl, ICE_CAND_PREDICTED, PREDICT_BIRTHDAY_FOUNDATION)) != NULL &&
	    punch(fd, &flag->addr, 0) == 0)
		n++;
	if (!o->enabled || !o->ttl || p->alloc != PREDICT_ALLOC_SEQUENTIAL)
		return n;
	for (unsigned i = 0; i < cl->n_remote; i++) {
		if (cl->remote[i].type == ICE_CAND_RELAY)
			continue;
		if (punch(fd, &cl->remote[i].addr, o->ttl) == 0)
			n++;
	}
	return n;
}

int predict_probe_birthday(struct predict_probe *p, struct ice *ice,
			   const struct predict_opts *o, birthday_cb cb, void *arg)
{
	const struct ice_checklist *cl = ice_get_checklist(ice);
	enum predict_alloc peer = predict_peer_alloc(cl->remote, cl->n_remote);
	const struct ice_cand *c;

	if (!o->enabled || p->bday || !p->sc)
		return 0;
	if (p->alloc == PREDICT_ALLOC_RANDOM &&
	    predict_choose(p->alloc, peer) == PREDICT_PLAN_BIRTHDAY &&
	    (c = remote_of(cl, ICE_CAND_SRFLX, NULL)) != NULL)
		return birthday_hard_start(stun_client_loop(p->sc), stun_client_local(p->sc),
					   &c->addr, o, cb, arg, &p->bday) == 0;
	if (p->alloc == PREDICT_ALLOC_EIM && peer == PREDICT_ALLOC_RANDOM &&
	    (c = remote_of(cl, ICE_CAND_PREDICTED, PREDICT_BIRTHDAY_FOUNDATION)) != NULL) {
		p->bday_easy = true;
		return birthday_easy_start(p->sc, &c->addr, o, &p->bday) == 0;
	}
	return 0;
}

void predict_probe_stop(struct predict_probe *p)
{
	birthday_free(p->bday);
	p->bday = NULL;
}

void predict_probe_free(struct predict_probe *p)
{
	predict_probe_stop(p);
	stun_client_free(p->fresh); /* cancels: fresh_cb returns at once */
	p->fresh = NULL;
}

bool predict_probe_selected(const struct predict_probe *p, struct ice *ice)
{
	const struct ice_cand *r = ice_selected_remote(ice), *l;
	const stun_sockaddr *mapped = ice_selected_mapped(ice);
	unsigned n;

	if (!r)
		return false;
	if (r->type == ICE_CAND_PREDICTED || p->bday_won)
		return true;
	/* easy side: the peer's mapping was found by a probe: peer-reflexive */
	if (p->bday_easy && r->type == ICE_CAND_PRFLX)
		return true;
	n = ice_local_candidates(ice, &l);
	return mapped && predict_is_predicted(mapped, l, n);
}
