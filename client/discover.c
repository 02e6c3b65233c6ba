/* discover: RFC 5780 NAT behaviour discovery (see discover.h). */
#include "discover.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "stun_client.h"

/* A test whose answer must come: RTO 500 ms (RFC 8489 s6.2.1), Rc and Rm
 * lowered so that a dead server is reported in 7.5 s, not 39.5 s. */
static const struct stun_rto rto_expect = { 500, 4, 8 };
/* A test whose answer may rightly never come (filtering): 3.5 s. */
static const struct stun_rto rto_maybe = { 500, 3, 4 };
/* Hairpinning and lifetime probes: loopback through the NAT, 1.25 s. */
static const struct stun_rto rto_short = { 250, 3, 2 };

/* Lifetime probe delays (s4.6), bounded by opts->lifetime_max_s. */
static const unsigned lifetime_steps[] = { 1, 2, 4, 8, 15, 30, 60, 120, 240, 480 };
#define N_LIFETIME_STEPS (sizeof(lifetime_steps) / sizeof(lifetime_steps[0]))

/* ---- classification (pure) ---- */

enum nat_mapping nat_mapping_classify(const stun_sockaddr *local, const stun_sockaddr *t1,
				      const stun_sockaddr *t2, const stun_sockaddr *t3)
{
	if (!t1)
		return NAT_MAP_UNKNOWN;
	/* s4.3 test I: same address and port as the socket: not NATed */
	if (local && stun_sockaddr_equal(local, t1))
		return NAT_MAP_NONE;
	if (!t2)
		return NAT_MAP_UNKNOWN;
	if (stun_sockaddr_equal(t1, t2))
		return NAT_MAP_EI;
	if (!t3)
		return NAT_MAP_UNKNOWN;
	return stun_sockaddr_equal(t2, t3) ? NAT_MAP_AD : NAT_MAP_APD;
}

enum nat_filtering nat_filtering_classify(enum nat_probe t2, enum nat_probe t3)
{
	if (t2 == NAT_PROBE_ANSWER)
		return NAT_FILT_EI;
	if (t2 != NAT_PROBE_NO_ANSWER)
		return NAT_FILT_UNKNOWN;
	if (t3 == NAT_PROBE_ANSWER)
		return NAT_FILT_AD;
	if (t3 == NAT_PROBE_NO_ANSWER)
		return NAT_FILT_APD;
	return NAT_FILT_UNKNOWN;
}

/* The distinct ports in order of first appearance: one per new mapping. */
static int distinct_ports(const uint16_t *ports, int n, uint16_t *out)
{
	int k = 0;

	for (int i = 0; i < n; i++) {
		bool seen = false;
		for (int j = 0; j < k && !seen; j++)
			seen = out[j] == ports[i];
		if (!seen)
			out[k++] = ports[i];
	}
	return k;
}

enum nat_port_alloc nat_port_classify(uint16_t local_port, const uint16_t *ports, int n,
				      int *delta)
{
	uint16_t d[64];

	if (n <= 0 || n > 64)
		return NAT_PORT_UNKNOWN;
	int k = distinct_ports(ports, n, d);
	if (k == 1)
		return d[0] == local_port ? NAT_PORT_PRESERVING : NAT_PORT_UNKNOWN;
	/* Two mappings give one difference: too little to call a pattern. */
	if (k < 3)
		return NAT_PORT_UNKNOWN;
	int step = (int)d[1] - (int)d[0];
	for (int i = 2; i < k; i++)
		if ((int)d[i] - (int)d[i - 1] != step)
			return NAT_PORT_RANDOM;
	*delta = step;
	return NAT_PORT_SEQUENTIAL;
}

const char *nat_type_name(enum nat_mapping m, enum nat_filtering f)
{
	switch (m) {
	case NAT_MAP_NONE:
		return f == NAT_FILT_AD || f == NAT_FILT_APD ? "symmetric udp firewall"
							       : "open internet";
	case NAT_MAP_EI:
		switch (f) {
		case NAT_FILT_EI: return "full cone";
		case NAT_FILT_AD: return "restricted cone";
		case NAT_FILT_APD: return "port-restricted cone";
		case NAT_FILT_UNKNOWN: return "unknown";
		}
		return "unknown";
	case NAT_MAP_AD:
	case NAT_MAP_APD:
		return "symmetric";
	case NAT_MAP_UNKNOWN:
		break;
	}
	return "unknown";
}

const char *nat_mapping_str(enum nat_mapping m)
{
	switch (m) {
	case NAT_MAP_NONE: return "none";
	case NAT_MAP_EI: return "endpoint-independent";
	case NAT_MAP_AD: return "address-dependent";
	case NAT_MAP_APD: return "address-and-port-dependent";
	case NAT_MAP_UNKNOWN: break;
	}
	return "unknown";
}

const char *nat_filtering_str(enum nat_filtering f)
{
	switch (f) {
	case NAT_FILT_EI: return "endpoint-independent";
	case NAT_FILT_AD: return "address-dependent";
	case NAT_FILT_APD: return "address-and-port-dependent";
	case NAT_FILT_UNKNOWN: break;
	}
	return "unknown";
}

const char *nat_port_alloc_str(enum nat_port_alloc p)
{
	switch (p) {
	case NAT_PORT_PRESERVING: return "preserving";
	case NAT_PORT_SEQUENTIAL: return "sequential";
	case NAT_PORT_RANDOM: return "random";
	case NAT_PORT_UNKNOWN: break;
	}
	return "unknown";
}

/* ---- running the tests ---- */

struct probe {
	bool done;
	enum stun_txn_status status;
	uint16_t code;
	bool have_mapped, have_other;
	stun_sockaddr mapped, other;
	uint32_t change;        /* CHANGE-REQUEST flags, 0: none */
	uint16_t response_port; /* RESPONSE-PORT, 0: none */
};

static void probe_attrs(struct stun_builder *b, void *arg)
{
	const struct probe *p = arg;

	if (p->change)
		stun_build_u32(b, STUN_ATTR_CHANGE_REQUEST, p->change); /* RFC 5780 s7.2 */
	if (p->response_port)
		stun_build_u16(b, STUN_ATTR_RESPONSE_PORT, p->response_port); /* s7.5 */
}

static void probe_cb(struct stun_client *c, const struct stun_txn_result *r, void *arg)
{
	struct probe *p = arg;
	const struct stun_msg *m = r->msg;

	(void)c;
	p->done = true;
	p->status = r->status;
	p->code = r->code;
	if (r->status != STUN_TXN_SUCCESS)
		return;
	if (stun_msg_has(m, STUN_ATTR_XOR_MAPPED_ADDRESS)) {
		p->mapped = m->xor_mapped;
		p->have_mapped = true;
	} else if (stun_msg_has(m, STUN_ATTR_MAPPED_ADDRESS)) {
		p->mapped = m->mapped; /* RFC 3489 servers */
		p->have_mapped = true;
	}
	if (stun_msg_has(m, STUN_ATTR_OTHER_ADDRESS)) {
		p->other = m->other_address;
		p->have_other = true;
	}
}

static int probe_start(struct stun_client *c, struct probe *p, const stun_sockaddr *dest,
		       const struct stun_rto *rto, uint8_t tid[STUN_TID_LEN])
{
	struct stun_request req = {
		.method = STUN_METHOD_BINDING,
		.dest = *dest,
		.attrs = probe_attrs,
		.attrs_arg = p,
		.rto = rto,
		.fingerprint = true,
		.cb = probe_cb,
		.arg = p,
	};

	p->done = false;
	p->have_mapped = p->have_other = false;
	return stun_client_request(c, &req, tid);
}

/* One Binding, waited for on the loop. */
static int probe_run(struct ev_loop *loop, struct stun_client *c, struct probe *p,
		     const stun_sockaddr *dest, const struct stun_rto *rto)
{
	int err = probe_start(c, p, dest, rto, NULL);

	if (err < 0)
		return err;
	while (!p->done)
		ev_run(loop, EVRUN_ONCE);
	return 0;
}

static enum nat_probe probe_outcome(const struct probe *p)
{
	if (p->status == STUN_TXN_SUCCESS)
		return NAT_PROBE_ANSWER;
	return p->status == STUN_TXN_TIMEOUT ? NAT_PROBE_NO_ANSWER : NAT_PROBE_NOT_RUN;
}

static stun_sockaddr with_port(const stun_sockaddr *a, uint16_t port)
{
	stun_sockaddr r = *a;

	stun_sockaddr_set_port(&r, port);
	return r;
}

/* The server's four transport addresses: primary/alternate IP x port. */
static void server_endpoints(const struct discover_result *r, const stun_sockaddr *server,
			     stun_sockaddr ep[4])
{
	uint16_t pp = stun_sockaddr_port(server), ap = stun_sockaddr_port(&r->other);

	ep[0] = *server;
	ep[1] = with_port(server, ap);
	ep[2] = with_port(&r->other, pp);
	ep[3] = r->other;
}

static void vsay(const struct discover_opts *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void vsay(const struct discover_opts *o, const char *fmt, ...)
{
	va_list ap;

	if (!o->verbose)
		return;
	va_start(ap, fmt);
	fputs("discover: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* s4.4 tests II and III on the socket of test I, before anything else is
 * sent from it ("sensitive to prior state on the NAT"). */
static void filtering_tests(struct ev_loop *loop, struct stun_client *c,
			    const struct discover_opts *o, struct discover_result *r)
{
	struct probe p2 = { .change = STUN_CHANGE_IP | STUN_CHANGE_PORT };
	struct probe p3 = { .change = STUN_CHANGE_PORT };
	enum nat_probe t3 = NAT_PROBE_NOT_RUN;

	if (probe_run(loop, c, &p2, &o->server, &rto_maybe) < 0)
		return;
	vsay(o, "filtering test II (change IP and port): %s", stun_txn_status_str(p2.status));
	if (probe_outcome(&p2) == NAT_PROBE_NO_ANSWER) {
		if (probe_run(loop, c, &p3, &o->server, &rto_maybe) < 0)
			return;
		vsay(o, "filtering test III (change port): %s", stun_txn_status_str(p3.status));
		t3 = probe_outcome(&p3);
	}
	r->filtering = nat_filtering_classify(probe_outcome(&p2), t3);
}

/* s4.3 tests II (alternate IP, primary port) and III (alternate both). */
static void mapping_tests(struct ev_loop *loop, struct stun_client *c,
			  const struct discover_opts *o, struct discover_result *r)
{
	struct probe p2 = { 0 }, p3 = { 0 };
	stun_sockaddr ep[4];
	const stun_sockaddr *m2 = NULL, *m3 = NULL;

	server_endpoints(r, &o->server, ep);
	if (r->mapping == NAT_MAP_NONE)
		return;
	if (probe_run(loop, c, &p2, &ep[2], &rto_expect) == 0 && p2.have_mapped)
		m2 = &p2.mapped;
	if (m2 && !stun_sockaddr_equal(m2, &r->public_addr) &&
	    probe_run(loop, c, &p3, &ep[3], &rto_expect) == 0 && p3.have_mapped)
		m3 = &p3.mapped;
	r->mapping = nat_mapping_classify(&r->local, &r->public_addr, m2, m3);
}

/* Hairpinning: a Binding request to our own mapped address; if it comes
 * back to this socket through the NAT, the NAT hairpins. */
struct hairpin {
	uint8_t tid[STUN_TID_LEN];
	struct probe p;
	bool seen;
};

static void hairpin_other(struct stun_client *c, const uint8_t *buf, size_t len,
			  const stun_sockaddr *from, const struct stun_msg *m, void *arg)
{
	struct hairpin *h = arg;

	(void)buf;
	(void)len;
	(void)from;
	if (!m || m->cls != STUN_CLASS_REQUEST || memcmp(m->tid, h->tid, STUN_TID_LEN))
		return;
	h->seen = true;
	stun_client_cancel(c, h->tid);
}

static void hairpin_test(struct ev_loop *loop, struct stun_client *c,
			 const struct discover_opts *o, struct discover_result *r)
{
	struct hairpin h = { 0 };

	stun_client_set_other(c, hairpin_other, &h);
	if (probe_start(c, &h.p, &r->public_addr, &rto_short, h.tid) == 0)
		while (!h.p.done)
			ev_run(loop, EVRUN_ONCE);
	stun_client_set_other(c, NULL, NULL);
	r->hairpinning = h.seen ? 1 : 0;
	vsay(o, "hairpinning: %s", h.seen ? "request came back" : "no request came back");
}

/* Port allocation: a fresh socket sends to the server's endpoints one after
 * the other; the mapped ports, in order, show the NAT's pattern. */
static void port_alloc_test(struct ev_loop *loop, const struct discover_opts *o,
			    struct discover_result *r)
{
	struct stun_client *c;
	stun_sockaddr ep[4], bind_addr = with_port(&r->local, 0);
	int n_ep = r->rfc5780 ? 4 : 1;

	server_endpoints(r, &o->server, ep);
	if (stun_client_open(loop, &bind_addr, &c) < 0)
		return;
	stun_client_set_verbose(c, o->verbose);
	r->ports_local = stun_sockaddr_port(stun_client_local(c));
	for (int i = 0; i < n_ep; i++) {
		struct probe p = { 0 };
		if (probe_run(loop, c, &p, &ep[i], &rto_expect) < 0 || !p.have_mapped)
			continue;
		r->ports[r->n_ports++] = stun_sockaddr_port(&p.mapped);
	}
	stun_client_free(c);
	r->port_alloc = nat_port_classify(r->ports_local, r->ports, r->n_ports, &r->delta);
}

static int discover_lifetime(struct ev_loop *loop, const struct discover_opts *o,
			     struct discover_result *r);

int discover_run(struct ev_loop *loop, const struct discover_opts *o,
		 struct discover_result *r, const char **why)
{
	struct stun_client *c = NULL;
	struct probe p1 = { 0 };
	stun_sockaddr bind_addr;
	ev_tstamp t0 = ev_time();
	int err;

	memset(r, 0, sizeof(*r));
	r->hairpinning = -1;
	*why = NULL;
	err = stun_route_source(&o->server, &bind_addr);
	if (err < 0) {
		*why = "no route to the server";
		return err;
	}
	err = stun_client_open(loop, &bind_addr, &c);
	if (err < 0) {
		*why = "cannot open a UDP socket";
		return err;
	}
	stun_client_set_verbose(c, o->verbose);
	r->local = *stun_client_local(c);
	/* s4.2 / s4.3 test I */
	err = probe_run(loop, c, &p1, &o->server, &rto_expect);
	if (err < 0 || p1.status != STUN_TXN_SUCCESS || !p1.have_mapped) {
		*why = p1.status == STUN_TXN_SUCCESS ? "the server's answer has no mapped address"
			: p1.status == STUN_TXN_ERROR_RESP ? "the server refused the Binding request"
			: p1.status == STUN_TXN_UNREACHABLE ? "the server is unreachable (ICMP "
							      "port unreachable: nothing listens there)"
			: "no answer from the server (is it running, is UDP blocked?)";
		err = err < 0 ? err : p1.status == STUN_TXN_TIMEOUT ? -ETIMEDOUT
		      : p1.status == STUN_TXN_UNREACHABLE ? -EHOSTUNREACH : -EPROTO;
		goto out;
	}
	r->public_addr = p1.mapped;
	r->rfc5780 = p1.have_other;
	r->other = p1.other;
	r->mapping = nat_mapping_classify(&r->local, &r->public_addr, NULL, NULL);
	vsay(o, "test I: mapped %s", stun_sockaddr_str(&p1.mapped, (char[64]){ 0 }, 64));
	if (r->rfc5780) {
		filtering_tests(loop, c, o, r);
		mapping_tests(loop, c, o, r);
	} else {
		vsay(o, "the server sent no OTHER-ADDRESS: it does not do RFC 5780");
	}
	hairpin_test(loop, c, o, r);
	port_alloc_test(loop, o, r);
	if (o->lifetime)
		discover_lifetime(loop, o, r);
	r->elapsed_ms = (unsigned)((ev_time() - t0) * 1000.0);
	err = 0;
out:
	stun_client_free(c);
	return err;
}

/* ---- binding lifetime (s4.6) ---- */

struct life_probe {
	struct lifetime_run *run;
	struct stun_client *x;      /* the socket whose binding we watch */
	stun_sockaddr mapped;
	unsigned t_s;
	ev_timer timer;
	uint8_t tid[STUN_TID_LEN];  /* Y's request; its response should reach X */
	struct probe py;
	bool started, alive, done;
};

struct lifetime_run {
	struct ev_loop *loop;
	const struct discover_opts *o;
	struct stun_client *y;
	struct life_probe probes[N_LIFETIME_STEPS];
	unsigned n, pending;
	bool refused;
};

static void life_done(struct life_probe *lp, bool alive)
{
	if (lp->done)
		return;
	lp->done = true;
	lp->alive = alive;
	lp->run->pending--;
	vsay(lp->run->o, "lifetime: binding %s after %u s", alive ? "alive" : "gone", lp->t_s);
}

static void life_x_other(struct stun_client *c, const uint8_t *buf, size_t len,
			 const stun_sockaddr *from, const struct stun_msg *m, void *arg)
{
	struct life_probe *lp = arg;

	(void)buf;
	(void)len;
	(void)from;
	if (!m || !lp->started || m->cls != STUN_CLASS_SUCCESS ||
	    memcmp(m->tid, lp->tid, STUN_TID_LEN))
		return;
	(void)c;
	life_done(lp, true);
	stun_client_cancel(lp->run->y, lp->tid);
}

static void life_y_cb(struct stun_client *c, const struct stun_txn_result *r, void *arg)
{
	struct life_probe *lp = arg;

	(void)c;
	lp->py.done = true;
	if (r->status == STUN_TXN_CANCELLED)
		return;
	if (r->status == STUN_TXN_ERROR_RESP)
		lp->run->refused = true; /* e.g. 420: no RESPONSE-PORT support */
	/* an answer on Y, or none at all: the binding for X is gone */
	life_done(lp, false);
}

static void life_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct life_probe *lp = w->data;
	struct stun_request req = {
		.method = STUN_METHOD_BINDING,
		.dest = lp->run->o->server,
		.attrs = probe_attrs,
		.attrs_arg = &lp->py,
		.rto = &rto_short,
		.fingerprint = true,
		.cb = life_y_cb,
		.arg = lp,
	};

	(void)loop;
	(void)revents;
	lp->py.response_port = stun_sockaddr_port(&lp->mapped);
	if (stun_client_request(lp->run->y, &req, lp->tid) < 0) {
		life_done(lp, false);
		return;
	}
	lp->started = true;
}

static void life_probe_start(struct lifetime_run *lr, struct life_probe *lp,
			     const stun_sockaddr *bind_addr)
{
	struct probe p = { 0 };

	lp->run = lr;
	lr->pending++;
	ev_timer_init(&lp->timer, life_timer_cb, lp->t_s, 0.);
	lp->timer.data = lp;
	if (stun_client_open(lr->loop, bind_addr, &lp->x) < 0) {
		life_done(lp, false);
		return;
	}
	if (probe_run(lr->loop, lp->x, &p, &lr->o->server, &rto_expect) < 0 || !p.have_mapped) {
		life_done(lp, false);
		return;
	}
	lp->mapped = p.mapped;
	stun_client_set_other(lp->x, life_x_other, lp);
	ev_timer_start(lr->loop, &lp->timer);
}

static void lifetime_summarise(const struct lifetime_run *lr, struct discover_result *r)
{
	r->lifetime_supported = !lr->refused;
	r->lifetime_min_s = 0;
	r->lifetime_max_s = 0;
	for (unsigned i = 0; i < lr->n; i++) {
		if (!lr->probes[i].alive) {
			r->lifetime_max_s = lr->probes[i].t_s;
			break;
		}
		r->lifetime_min_s = lr->probes[i].t_s;
	}
}

/* All probes run in parallel, each on its own socket X, so the test takes
 * about the largest delay, not the sum. */
static int discover_lifetime(struct ev_loop *loop, const struct discover_opts *o,
			     struct discover_result *r)
{
	struct lifetime_run *lr = calloc(1, sizeof(*lr));
	stun_sockaddr bind_addr = with_port(&r->local, 0);
	int err;

	if (!lr)
		return -ENOMEM;
	lr->loop = loop;
	lr->o = o;
	err = stun_client_open(loop, &bind_addr, &lr->y);
	if (err < 0)
		goto out;
	for (unsigned i = 0; i < N_LIFETIME_STEPS && lifetime_steps[i] <= o->lifetime_max_s; i++)
		lr->probes[lr->n++].t_s = lifetime_steps[i];
	for (unsigned i = 0; i < lr->n; i++)
		life_probe_start(lr, &lr->probes[i], &bind_addr);
	while (lr->pending)
		ev_run(loop, EVRUN_ONCE);
	r->lifetime_run = true;
	lifetime_summarise(lr, r);
out:
	for (unsigned i = 0; i < lr->n; i++) {
		ev_timer_stop(loop, &lr->probes[i].timer);
		stun_client_free(lr->probes[i].x);
	}
	stun_client_free(lr->y);
	free(lr);
	return err;
}
