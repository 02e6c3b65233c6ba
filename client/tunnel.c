/* tunnel: natclient listen / connect (see tunnel.h). */
#include "tunnel.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ev.h>

#include "ice.h"
#include "predict_probe.h"
#include "rendezvous_client.h"
#include "stun_client.h"
#include "stun_stream.h"
#include "turn_client.h"

#define DATAGRAM_MAX 1400  /* what one stdin read becomes at most */
#define BIRTHDAY_AFTER_S 0.4 /* the birthday only if no direct pair by then */
#define MAX_FLOWS 64

/* Every datagram between the peers carries a 2-byte flow header: 0xD0 |
 * flow >> 8, flow & 0xFF (flow 0-4095). The first byte keeps data apart
 * from STUN (0x00-0x03) and ChannelData (0x40-0x4F) on the shared socket
 * (RFC 7983), and the flow lets several local clients (--local), each with
 * its own source port, share one path: the --expose side gives each flow
 * its own socket towards the service. stdin/stdout is flow 0. */
#define FLOW_MARK 0xD0
#define FLOW_HDR 2

#define MAX_SESSIONS_DEFAULT 16
#define RECONNECT_S 30 /* listen over tcp://, tls://: a lost connection, tried again */

struct session;

struct flow {
	struct session *s;
	uint16_t id;
	bool used;
	stun_sockaddr client;      /* --local: the local client's address */
	int fd;                    /* --expose: a socket towards the service */
	ev_io w;
};

/* One peer's session: its ICE agent (credentials, checks, selected pair)
 * and its flows. connect, and listen without --expose, have one (sess[0]);
 * listen --expose has up to max-sessions, one per connecting peer, each
 * flow with its own socket towards the service (the service sees the
 * sessions apart, as a server sees clients behind different NATs). */
struct session {
	struct tunnel *tn;
	bool used;
	struct ice *ice;
	struct ice_creds creds;
	/* owned, NULL: none. predict's birthday (hard side): the socket a
	 * probe reached carries the agent's checks and data; the tunnel's
	 * socket keeps the server's flows (registration, TURN) */
	struct stun_client *bsc;
	char peer_user[RDV_USER_MAX + 1];
	stun_sockaddr peer;        /* the offer's flow as the server saw it */
	bool has_peer;
	struct flow flows[MAX_FLOWS];
	uint16_t next_flow;
	ev_timer reap;
	bool waiting;              /* its offer waits for predict_probe_refresh() */
	struct rdv_offer offer;    /* that offer */
};

struct tunnel {
	const struct tunnel_opts *o;
	struct ev_loop *loop;
	struct stun_client *sc;
	struct stun_cred cred;
	struct rdv_client *rdv;
	struct turn_client *turn;
	bool turn_done;
	int turn_status;
	struct session *sess;      /* the table: n_sess slots */
	unsigned n_sess;
	struct session *probed;    /* the session predict's probe serves */
	stun_sockaddr srflx;
	bool has_srflx, srflx_done;
	stun_sockaddr other;       /* the server's OTHER-ADDRESS (RFC 5780) */
	bool has_other;
	struct predict_opts popts;
	struct predict_probe probe;
	ev_tstamp t0;
	int exit_code;
	bool in_eof;
	int app_fd;                /* --local socket, -1: none */
	uint64_t dropped;          /* datagrams without a flow header, unknown flows */
	ev_io in, app;
	ev_timer timeout, bday; /* bday: when the birthday may start */
	/* a lost path is re-established (issue 5): connect restarts ICE with a
	 * new offer (RFC 8445 s9: new credentials) until --timeout; listen
	 * takes a new offer from the same user in place of its session */
	ev_timer restart;
	bool restarting;           /* connect: since the path was lost */
	bool restart_waiting;      /* connect: the new offer waits for a refresh */
	unsigned restarts;
	bool stream_up;            /* tcp://, tls://: the relay was allocated */
	bool reconnecting;         /* the connection was lost: a new one, until */
	ev_tstamp reconnect_until;
	unsigned reconnects;
	ev_timer reopen;
	ev_signal sigint, sigterm;
	uint8_t buf[65536];
};

/* the server over TCP/TLS: see that section */
static bool over_stream(const struct tunnel *tn);
static int open_stream(struct tunnel *tn);
static int stream_gathered(struct tunnel *tn);
static void stream_init(struct tunnel *tn);
static void stream_cleanup(struct tunnel *tn);

/* ---- events ---- */

static void event(struct tunnel *tn, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void event(struct tunnel *tn, const char *name, const char *fmt, ...)
{
	va_list ap;
	unsigned ms = (unsigned)((ev_now(tn->loop) - tn->t0) * 1000.0);

	va_start(ap, fmt);
	if (tn->o->json) {
		fprintf(stderr, "{\"event\":\"%s\",\"ms\":%u%s", name, ms, fmt[0] ? "," : "");
		vfprintf(stderr, fmt, ap);
		fputs("}\n", stderr);
	} else {
		char text[1024];
		vsnprintf(text, sizeof(text), fmt, ap);
		fprintf(stderr, "natclient: %s (%u ms)%s%s\n", name, ms, text[0] ? ": " : "", text);
	}
	va_end(ap);
	fflush(stderr);
}

static void finish(struct tunnel *tn, int code)
{
	tn->exit_code = code;
	ev_break(tn->loop, EVBREAK_ALL);
}

static void fail(struct tunnel *tn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct tunnel *tn, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (tn->o->json)
		event(tn, "error", "\"reason\":\"%s\"", text);
	else
		fprintf(stderr, "natclient: %s: %s\n", tn->o->role == TUNNEL_LISTEN ? "listen" : "connect",
			text);
	finish(tn, 1);
}

static const char *addr_str(const stun_sockaddr *a, char *buf)
{
	return stun_sockaddr_str(a, buf, 64);
}

/* ---- candidates <-> the rendezvous session ---- */

static uint8_t rdv_type(enum ice_cand_type t)
{
	switch (t) {
	case ICE_CAND_HOST: return RDV_CAND_HOST;
	case ICE_CAND_SRFLX: return RDV_CAND_SRFLX;
	case ICE_CAND_PRFLX: return RDV_CAND_PRFLX;
	case ICE_CAND_RELAY: return RDV_CAND_RELAY;
	case ICE_CAND_PREDICTED: return RDV_CAND_PREDICTED;
	}
	return RDV_CAND_HOST;
}

static enum ice_cand_type ice_type(uint8_t t)
{
	switch (t) {
	case RDV_CAND_SRFLX: return ICE_CAND_SRFLX;
	case RDV_CAND_PRFLX: return ICE_CAND_PRFLX;
	case RDV_CAND_RELAY: return ICE_CAND_RELAY;
	case RDV_CAND_PREDICTED: return ICE_CAND_PREDICTED;
	}
	return ICE_CAND_HOST;
}

static void session_make(struct session *ss, struct rdv_session *s)
{
	const struct ice_cand *c;
	unsigned n = ice_local_candidates(ss->ice, &c);

	memset(s, 0, sizeof(*s));
	for (unsigned i = 0; i < n && s->n_cand < RDV_MAX_CANDIDATES; i++) {
		struct rdv_candidate *r = &s->cand[s->n_cand++];
		r->type = rdv_type(c[i].type);
		r->transport = RDV_TRANSPORT_UDP;
		r->component = c[i].component;
		r->priority = c[i].priority;
		r->addr = c[i].addr;
		snprintf(r->foundation, sizeof(r->foundation), "%s", c[i].foundation);
	}
	snprintf(s->ufrag, sizeof(s->ufrag), "%s", ss->creds.ufrag);
	snprintf(s->pwd, sizeof(s->pwd), "%s", ss->creds.pwd);
	s->tie_breaker = 0;
}

static int remote_from_session(struct session *ss, const struct rdv_session *s)
{
	struct ice_cand c[RDV_MAX_CANDIDATES];
	struct ice_creds rc;
	unsigned n = 0;

	memset(c, 0, sizeof(c));
	for (unsigned i = 0; i < s->n_cand && n < RDV_MAX_CANDIDATES; i++) {
		if (s->cand[i].transport != RDV_TRANSPORT_UDP)
			continue;
		c[n].type = ice_type(s->cand[i].type);
		c[n].component = s->cand[i].component ? s->cand[i].component : 1;
		c[n].priority = s->cand[i].priority;
		c[n].addr = s->cand[i].addr;
		c[n].base = s->cand[i].addr;
		snprintf(c[n].foundation, sizeof(c[n].foundation), "%s", s->cand[i].foundation);
		n++;
	}
	snprintf(rc.ufrag, sizeof(rc.ufrag), "%s", s->ufrag);
	snprintf(rc.pwd, sizeof(rc.pwd), "%s", s->pwd);
	return ice_set_remote(ss->ice, &rc, c, n);
}

/* ---- the data path ---- */

static int send_flow(struct session *s, uint16_t flow, const uint8_t *buf, size_t len)
{
	uint8_t out[FLOW_HDR + 65536];

	if (!s->ice || len > sizeof(out) - FLOW_HDR)
		return -EINVAL;
	out[0] = (uint8_t)(FLOW_MARK | (flow >> 8));
	out[1] = (uint8_t)flow;
	memcpy(out + FLOW_HDR, buf, len);
	return ice_send(s->ice, out, len + FLOW_HDR);
}

static void expose_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct flow *f = w->data;
	struct tunnel *tn = f->s->tn;

	(void)loop;
	(void)revents;
	for (int i = 0; i < 64; i++) {
		ssize_t n = recv(f->fd, tn->buf, sizeof(tn->buf), MSG_DONTWAIT);
		if (n < 0)
			return;
		send_flow(f->s, f->id, tn->buf, (size_t)n);
	}
}

/* --expose: the flow's own socket towards the service (the service sees
 * one source port per remote client). */
static struct flow *expose_flow(struct session *s, uint16_t id)
{
	struct tunnel *tn = s->tn;
	const stun_sockaddr *a = &tn->o->expose;
	struct flow *free_slot = NULL;

	for (int i = 0; i < MAX_FLOWS; i++) {
		if (s->flows[i].used && s->flows[i].id == id)
			return &s->flows[i];
		if (!s->flows[i].used && !free_slot)
			free_slot = &s->flows[i];
	}
	if (!free_slot)
		return NULL;
	int fd = socket(stun_sockaddr_family(a), SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return NULL;
	if (connect(fd, &a->sa, stun_sockaddr_len(a)) < 0) {
		close(fd);
		return NULL;
	}
	*free_slot = (struct flow){ .s = s, .id = id, .used = true, .fd = fd };
	ev_io_init(&free_slot->w, expose_cb, fd, EV_READ);
	free_slot->w.data = free_slot;
	ev_io_start(tn->loop, &free_slot->w);
	return free_slot;
}

static struct flow *local_flow_by_id(struct session *s, uint16_t id)
{
	for (int i = 0; i < MAX_FLOWS; i++)
		if (s->flows[i].used && s->flows[i].id == id)
			return &s->flows[i];
	return NULL;
}

static void app_out(struct session *s, uint16_t flow, const uint8_t *buf, size_t len)
{
	struct tunnel *tn = s->tn;
	struct flow *f;

	if (tn->o->has_expose) {
		f = expose_flow(s, flow);
		if (!f || send(f->fd, buf, len, 0) < 0)
			tn->dropped++;
	} else if (tn->o->has_local) {
		f = local_flow_by_id(s, flow);
		if (!f)
			tn->dropped++;
		else
			sendto(tn->app_fd, buf, len, 0, &f->client.sa, stun_sockaddr_len(&f->client));
	} else if (write(1, buf, len) < 0) {
		fail(tn, "stdout: %s", strerror(errno));
	}
}

static void on_data(struct ice *ice, const uint8_t *buf, size_t len, const stun_sockaddr *from,
		    void *arg)
{
	struct session *s = arg;

	(void)ice;
	(void)from;
	if (len < FLOW_HDR || (buf[0] & 0xF0) != FLOW_MARK) {
		s->tn->dropped++;
		return;
	}
	app_out(s, (uint16_t)((buf[0] & 0x0F) << 8 | buf[1]), buf + FLOW_HDR, len - FLOW_HDR);
}

static void stdin_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct tunnel *tn = w->data;
	ssize_t n = read(0, tn->buf, DATAGRAM_MAX);

	(void)revents;
	if (n <= 0) { /* like netcat: stop reading, keep receiving */
		ev_io_stop(loop, w);
		tn->in_eof = true;
		return;
	}
	send_flow(&tn->sess[0], 0, tn->buf, (size_t)n);
}

/* --local: one flow per client source address. */
static struct flow *local_flow(struct session *s, const stun_sockaddr *from)
{
	struct flow *free_slot = NULL;

	for (int i = 0; i < MAX_FLOWS; i++) {
		if (s->flows[i].used && stun_sockaddr_equal(&s->flows[i].client, from))
			return &s->flows[i];
		if (!s->flows[i].used && !free_slot)
			free_slot = &s->flows[i];
	}
	if (!free_slot)
		return NULL;
	*free_slot = (struct flow){ .s = s, .used = true, .client = *from, .fd = -1,
				    .id = (uint16_t)(1 + s->next_flow++ % 4095) };
	return free_slot;
}

static void app_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct tunnel *tn = w->data;
	stun_sockaddr from;
	socklen_t fl = sizeof(from);

	(void)loop;
	(void)revents;
	for (int i = 0; i < 64; i++) {
		ssize_t n = recvfrom(tn->app_fd, tn->buf, sizeof(tn->buf), MSG_DONTWAIT, &from.sa, &fl);
		if (n < 0)
			return;
		fl = sizeof(from);
		struct flow *f = local_flow(&tn->sess[0], &from);
		if (f && tn->sess[0].ice)
			send_flow(&tn->sess[0], f->id, tn->buf, (size_t)n);
	}
}

/* --local: the bound socket local clients send to. */
static int open_app(struct tunnel *tn)
{
	const stun_sockaddr *a = &tn->o->local;
	int fd = socket(stun_sockaddr_family(a), SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -errno;
	if (bind(fd, &a->sa, stun_sockaddr_len(a)) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	tn->app_fd = fd;
	ev_io_init(&tn->app, app_cb, fd, EV_READ);
	tn->app.data = tn;
	ev_io_start(tn->loop, &tn->app);
	return 0;
}

/* ---- ICE ---- */

static const char *path_of(struct session *s, const struct ice_cand *l,
			   const struct ice_cand *r)
{
	if (l->type == ICE_CAND_RELAY || r->type == ICE_CAND_RELAY)
		return "relay";
	return predict_probe_selected(&s->tn->probe, s->ice) ? "predicted" : "direct";
}

/* A session's path ends: its agent goes; its flows (and their sockets
 * towards the service) stay for the peer's next offer (a restart). */
static void session_drop_ice(struct session *s)
{
	struct tunnel *tn = s->tn;

	ev_timer_stop(tn->loop, &s->reap);
	s->waiting = false;
	if (tn->probed == s) {
		predict_probe_stop(&tn->probe);
		tn->probed = NULL;
	}
	ice_free(s->ice);
	s->ice = NULL;
	stun_client_free(s->bsc); /* after the agent: its transactions were on it */
	s->bsc = NULL;
}

/* A session's end: its agent, its flows' sockets; the slot is free again. */
static void session_close(struct session *s)
{
	struct tunnel *tn = s->tn;

	session_drop_ice(s);
	for (int i = 0; i < MAX_FLOWS; i++) {
		if (s->flows[i].used && s->flows[i].fd >= 0) {
			ev_io_stop(tn->loop, &s->flows[i].w);
			close(s->flows[i].fd);
		}
		s->flows[i].used = false;
	}
	s->used = false;
}

/* -v: the permissions (per peer IP) and channels (per peer address) the
 * sessions hold on the shared TURN allocation, after session s connected
 * or ended. */
static void relay_held(struct session *s, const char *why)
{
	struct tunnel *tn = s->tn;

	if (!tn->o->verbose || !tn->turn || !turn_client_is_allocated(tn->turn))
		return;
	event(tn, "relay-held", "\"session\":%u,\"after\":\"%s\",\"permissions\":%u,"
	      "\"channels\":%u", (unsigned)(s - tn->sess), why, turn_client_held(tn->turn, false),
	      turn_client_held(tn->turn, true));
}

static void reap_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	session_drop_ice(w->data); /* not from inside its agent's callback */
	relay_held(w->data, "end");
}

static void on_connected(struct session *s)
{
	struct tunnel *tn = s->tn;
	const struct ice_cand *l = ice_selected_local(s->ice), *r = ice_selected_remote(s->ice);
	char lb[64], rb[64];

	event(tn, "connected", "\"session\":%u,\"path\":\"%s\",\"local\":\"%s\","
	      "\"remote\":\"%s\",\"local_type\":\"%s\",\"remote_type\":\"%s\"",
	      (unsigned)(s - tn->sess), path_of(s, l, r),
	      addr_str(&l->addr, lb), addr_str(&r->addr, rb), ice_cand_type_str(l->type),
	      ice_cand_type_str(r->type));
	ev_timer_stop(tn->loop, &tn->timeout);
	tn->restarting = false;
	if (!tn->o->has_expose && !tn->o->has_local && !tn->in_eof)
		ev_io_start(tn->loop, &tn->in);
	relay_held(s, "connected");
}

/* connect: the path is lost (RFC 7675 consent expired) or the checks of a
 * restart failed: ICE restarts (s9) after delay, from outside the ICE
 * agent's callback; the --local socket stays open meanwhile, and --timeout
 * counts from the loss. */
static void restart_later(struct tunnel *tn, double delay)
{
	if (!tn->restarting) {
		tn->restarting = true;
		event(tn, "disconnected", "\"reason\":\"no consent answer for %u ms\"",
		      tn->o->consent_timeout_ms ? tn->o->consent_timeout_ms : 30000);
		ev_timer_set(&tn->timeout, tn->o->timeout_s > 0 ? tn->o->timeout_s : 30., 0.);
		ev_timer_start(tn->loop, &tn->timeout);
	}
	ev_timer_stop(tn->loop, &tn->restart);
	ev_timer_set(&tn->restart, delay, 0.);
	ev_timer_start(tn->loop, &tn->restart);
}

static void on_state(struct ice *ice, enum ice_state st, void *arg)
{
	struct session *s = arg;
	struct tunnel *tn = s->tn;

	(void)ice;
	if (st == ICE_CONNECTED) {
		on_connected(s);
		return;
	}
	if (st != ICE_FAILED && st != ICE_DISCONNECTED)
		return;
	ev_io_stop(tn->loop, &tn->in);
	if (tn->o->role == TUNNEL_CONNECT && st == ICE_FAILED && !tn->restarting) {
		fail(tn, "no path opened: every connectivity check failed");
		return;
	}
	if (tn->o->role == TUNNEL_CONNECT) {
		restart_later(tn, st == ICE_FAILED ? 1.0 : 0.);
		return;
	}
	event(tn, st == ICE_FAILED ? "failed" : "disconnected", "\"session\":%u",
	      (unsigned)(s - tn->sess));
	ev_timer_start(tn->loop, &s->reap); /* then wait for the next offer */
}

static int ice_setup(struct session *s, bool controlling)
{
	struct tunnel *tn = s->tn;
	struct ice_params p = { .controlling = controlling,
				.tie_breaker = ice_tie_breaker_random(),
				.relay_fallback_ms = tn->o->relay_fallback_ms,
				.consent_timeout_ms = tn->o->consent_timeout_ms,
				.verbose = tn->o->verbose > 1 };
	struct ice_cbs cbs = { .state = on_state, .data = on_data, .arg = s };
	int err;

	ice_creds_random(&s->creds);
	err = ice_new(tn->sc, &p, &s->creds, &cbs, &s->ice);
	if (err < 0)
		return err;
	if (tn->o->relay != TUNNEL_RELAY_ALWAYS && !over_stream(tn)) {
		ice_gather_host_for(s->ice, &tn->o->server);
		if (tn->has_srflx) {
			struct ice_cand c = { .type = ICE_CAND_SRFLX, .component = 1 };
			c.addr = tn->srflx;
			c.base = *stun_client_local(tn->sc);
			c.server = tn->o->server;
			ice_cand_finish(&c, 65535);
			ice_add_local(s->ice, &c);
			predict_probe_add(&tn->probe, s->ice, &tn->srflx, &tn->o->server, &tn->popts);
		}
	}
	if (tn->turn && turn_client_is_allocated(tn->turn))
		ice_set_relay(s->ice, tn->turn);
	const struct ice_cand *c;
	unsigned n = ice_local_candidates(s->ice, &c);
	if (!n)
		return -ENOENT;
	for (unsigned i = 0; i < n; i++) {
		char b[64];
		event(tn, "candidate", "\"type\":\"%s\",\"address\":\"%s\",\"priority\":%u",
		      ice_cand_type_str(c[i].type), addr_str(&c[i].addr, b), c[i].priority);
	}
	return 0;
}

/* ---- the socket's other datagrams ---- */

/* A check goes to the session whose ufrag starts its USERNAME "LFRAG:RFRAG"
 * (RFC 8445 s7.2.2); one no session knows goes to the first, which answers
 * 401 (RFC 8489 s9.1.3). Responses and indications: any session (the
 * stun_client matched our own transactions already). */
static struct session *route_stun(struct tunnel *tn, const struct stun_msg *m)
{
	struct session *any = NULL;

	for (unsigned i = 0; i < tn->n_sess; i++) {
		struct session *s = &tn->sess[i];
		size_t ul = strlen(s->creds.ufrag);

		if (!s->ice)
			continue;
		if (!any)
			any = s;
		if (m->cls == STUN_CLASS_REQUEST && stun_msg_has(m, STUN_ATTR_USERNAME) &&
		    m->username.len > ul && !memcmp(m->username.p, s->creds.ufrag, ul) &&
		    m->username.p[ul] == ':')
			return s;
	}
	return any;
}

/* Is `from` (through the relay or not) the remote of the session's
 * selected pair? */
static bool on_path(const struct ice *ice, const stun_sockaddr *from, bool via_relay)
{
	const struct ice_cand *l = ice_selected_local(ice), *r = ice_selected_remote(ice);

	return r && (l->type == ICE_CAND_RELAY) == via_relay && stun_sockaddr_equal(&r->addr, from);
}

/* Otherwise: 2 the remote of a pair that succeeded, 1 one of its remote
 * candidates, 0 none. */
static int data_score(const struct ice *ice, const stun_sockaddr *from, bool via_relay)
{
	const struct ice_checklist *cl = ice_get_checklist(ice);

	for (unsigned i = 0; i < cl->n_pairs; i++) {
		const struct ice_pair *p = &cl->pairs[i];
		if (p->state == ICE_PAIR_SUCCEEDED &&
		    (cl->local[p->local].type == ICE_CAND_RELAY) == via_relay &&
		    stun_sockaddr_equal(&cl->remote[p->remote].addr, from))
			return 2;
	}
	for (unsigned j = 0; j < cl->n_remote; j++)
		if (stun_sockaddr_equal(&cl->remote[j].addr, from))
			return 1;
	return 0;
}

/* Data: the session whose path the sender is on, else the one that knows
 * it best (data_score). Two sessions may both list an address (peers
 * behind one NAT: one's predicted window holds the other's mapping, or
 * two peers have the same private host address): the path in use wins. */
static struct session *route_addr(struct tunnel *tn, const stun_sockaddr *from, bool via_relay)
{
	struct session *best = NULL;
	int best_score = 0;

	for (unsigned i = 0; i < tn->n_sess; i++)
		if (tn->sess[i].ice && on_path(tn->sess[i].ice, from, via_relay))
			return &tn->sess[i];
	for (unsigned i = 0; i < tn->n_sess && best_score < 2; i++) {
		int sc = tn->sess[i].ice ? data_score(tn->sess[i].ice, from, via_relay) : 0;

		if (sc > best_score) {
			best = &tn->sess[i];
			best_score = sc;
		}
	}
	return best;
}

static void other_cb(struct stun_client *c, const uint8_t *buf, size_t len,
		     const stun_sockaddr *from, const struct stun_msg *m, void *arg)
{
	struct tunnel *tn = arg;
	struct session *s;

	(void)c;
	if (tn->turn && turn_client_input(tn->turn, buf, len, from, m))
		return;
	if (m) {
		s = route_stun(tn, m);
		/* A session moved to its birthday socket answers checks from
		 * there only: one reaching this socket (sent before the move
		 * was known, e.g. under delay) would be answered from the other
		 * socket's address, which the peer discards (RFC 8445
		 * s7.2.5.2.1), while we would take the pair as valid. */
		if (s && !(s->bsc && m->cls == STUN_CLASS_REQUEST))
			ice_input(s->ice, buf, len, from, m);
		return;
	}
	s = route_addr(tn, from, false); /* data: by the peer's address */
	if (s)
		ice_input(s->ice, buf, len, from, NULL);
}

/* A check's answer through the relay: to the stun_client its transaction
 * lives on, the shared socket's or, after a birthday hit, that session's
 * own (any session's relayed checks use the one allocation). */
static void relayed_response(struct tunnel *tn, const uint8_t *buf, size_t len,
			     const stun_sockaddr *peer)
{
	if (stun_client_inject(tn->sc, buf, len, peer))
		return;
	for (unsigned i = 0; i < tn->n_sess; i++)
		if (tn->sess[i].ice && tn->sess[i].bsc &&
		    stun_client_inject(tn->sess[i].bsc, buf, len, peer))
			return;
}

static void turn_data(struct turn_client *t, const stun_sockaddr *peer, const uint8_t *data,
		      size_t len, bool via_channel, void *arg)
{
	struct tunnel *tn = arg;
	struct session *s = NULL;
	struct stun_msg m;

	(void)t;
	(void)via_channel;
	if (stun_demux(data, len) == STUN_DEMUX_STUN && stun_msg_parse(&m, data, len) == 0) {
		if (m.cls == STUN_CLASS_SUCCESS || m.cls == STUN_CLASS_ERROR) {
			relayed_response(tn, data, len, peer);
			return;
		}
		s = route_stun(tn, &m);
	} else {
		s = route_addr(tn, peer, true);
	}
	if (s)
		ice_input_relayed(s->ice, data, len, peer);
}

static void turn_allocated(struct turn_client *t, int status, void *arg)
{
	struct tunnel *tn = arg;

	(void)t;
	tn->turn_done = true;
	tn->turn_status = status;
}

static void turn_lost(struct turn_client *t, int status, void *arg)
{
	(void)t;
	(void)status;
	event(arg, "relay-lost", "%s", "");
}

/* ---- gathering: srflx by a Binding, relayed by an Allocate ---- */

static void binding_cb(struct stun_client *c, const struct stun_txn_result *r, void *arg)
{
	struct tunnel *tn = arg;

	(void)c;
	tn->srflx_done = true;
	if (r->status == STUN_TXN_SUCCESS && stun_msg_has(r->msg, STUN_ATTR_XOR_MAPPED_ADDRESS)) {
		tn->srflx = r->msg->xor_mapped;
		tn->has_srflx = true;
	}
	if (r->status == STUN_TXN_SUCCESS && stun_msg_has(r->msg, STUN_ATTR_OTHER_ADDRESS)) {
		tn->other = r->msg->other_address;
		tn->has_other = true;
	}
}

static void ports_json(char *b, size_t cap, const uint16_t *p, unsigned n)
{
	size_t l = 0;

	b[0] = 0;
	for (unsigned i = 0; i < n && l < cap; i++)
		l += (size_t)snprintf(b + l, cap - l, "%s%u", i ? "," : "", p[i]);
}

/* Symmetric NATs: how the NAT allocates ports, for predicted candidates. */
static void probe(struct tunnel *tn)
{
	const struct predict_probe *p = &tn->probe;
	char ports[PREDICT_MAX_WINDOW * 6 + 1];

	if (!tn->popts.enabled || !tn->has_other || tn->o->relay == TUNNEL_RELAY_ALWAYS)
		return;
	if (predict_probe_run(&tn->probe, tn->sc, &tn->o->server, &tn->other,
			      stun_sockaddr_port(&tn->srflx)) < 0)
		return;
	ports_json(ports, sizeof(ports), p->ports, p->n_ports);
	event(tn, "allocation", "\"pattern\":\"%s\",\"ports\":[%s],\"delta\":%d",
	      predict_alloc_str(p->alloc), ports, p->delta);
}

static int gather(struct tunnel *tn)
{
	static const struct stun_rto rto = { 500, 4, 8 };
	struct stun_request req = { .method = STUN_METHOD_BINDING, .dest = tn->o->server,
				    .rto = &rto, .fingerprint = true, .cb = binding_cb, .arg = tn };
	struct turn_client_cbs cbs = { .allocated = turn_allocated, .data = turn_data,
				       .lost = turn_lost, .arg = tn };
	int err;

	if (over_stream(tn)) /* the flow's mapping is TCP's: no srflx */
		tn->srflx_done = true;
	else if ((err = stun_client_request(tn->sc, &req, NULL)) < 0)
		return err;
	if (tn->o->relay != TUNNEL_RELAY_NEVER) {
		err = turn_client_new(tn->sc, &tn->o->server, &tn->cred, &cbs, &tn->turn);
		if (!err) /* peers reach us in the server's family */
			turn_client_set_family(tn->turn, stun_sockaddr_family(&tn->o->server));
		if (!err)
			err = turn_client_allocate(tn->turn, 0);
		if (err < 0)
			return err;
	} else {
		tn->turn_done = true;
	}
	/* no Binding answer (7.5 s): the Allocate (39.5 s) will not get one either */
	while ((!tn->srflx_done || !tn->turn_done) && tn->exit_code < 0 &&
	       !(tn->srflx_done && !tn->has_srflx && !over_stream(tn)))
		ev_run(tn->loop, EVRUN_ONCE);
	if (over_stream(tn))
		return stream_gathered(tn);
	if (!tn->has_srflx)
		return -EHOSTUNREACH;
	probe(tn);
	if (tn->turn_status == -EACCES) {
		fail(tn, "the server rejected user \"%s\" (401): check user and password "
		     "(--config FILE, NATCLIENT_USER, NATCLIENT_PASSWORD)", tn->cred.user);
		return -EACCES;
	}
	if (tn->turn_status && tn->o->relay == TUNNEL_RELAY_ALWAYS) {
		fail(tn, "--relay always, but no relay: %s", turn_client_strerror(tn->turn_status));
		return -ENOTCONN;
	}
	if (tn->turn_status)
		event(tn, "no-relay", "\"reason\":\"%s\"", turn_client_strerror(tn->turn_status));
	return 0;
}

/* ---- the rendezvous ---- */

static const char *rdv_reason(const struct tunnel *tn, const struct rdv_result *r)
{
	static char text[256];

	switch (r->status) {
	case -1:
		return r->txn == STUN_TXN_AUTH_FAILED
		       ? "the server rejected the user or password (check --config FILE, "
			 "NATCLIENT_USER, NATCLIENT_PASSWORD)"
		       : "no answer from the server";
	case 401: return "the server rejected the user or password";
	case 404:
		snprintf(text, sizeof(text), "no peer is registered as \"%s\" (is `natclient listen "
			 "%s` running against this server?)", tn->o->id, tn->o->id);
		return text;
	case 408: return "the peer did not answer the offer (did it die?)";
	case 409:
		snprintf(text, sizeof(text), "the ID \"%s\" is taken by another user: choose another",
			 tn->o->id);
		return text;
	case 480: /* the server passes any refusal on as 480 (PROTOCOL.md s4.3) */
		return "the peer declined the connection (busy: it serves another peer on "
		       "stdin/stdout, or as many sessions as its max-sessions allows)";
	}
	snprintf(text, sizeof(text), "the server said %d %s", r->status,
		 r->reason ? r->reason : stun_error_reason((uint16_t)r->status));
	return text;
}

static unsigned sessions_open(const struct tunnel *tn)
{
	unsigned n = 0;

	for (unsigned i = 0; i < tn->n_sess; i++)
		n += tn->sess[i].used;
	return n;
}

/* The birthday socket's datagrams: the peer's checks, responses to ours
 * (matched by the stun_client), data: all the session's. */
static void birthday_other_cb(struct stun_client *c, const uint8_t *buf, size_t len,
			      const stun_sockaddr *from, const struct stun_msg *m, void *arg)
{
	struct session *s = arg;

	(void)c;
	if (s->ice)
		ice_input(s->ice, buf, len, from, m);
}

/* The birthday's hard side: the socket a probe reached carries the
 * session's checks and data from now on (its own stun_client); the
 * tunnel's socket goes on with the registration and the TURN allocation,
 * so they outlive the session (a later offer, an ICE restart through the
 * relay). Only while checking or connected over the relay. */
static void on_birthday(struct birthday *b, int fd, const stun_sockaddr *from, void *arg)
{
	struct tunnel *tn = arg;
	struct session *s = tn->probed;
	struct stun_client *bsc;
	char lb[64];

	(void)b;
	if (fd >= 0 && (!s || !s->ice || s->bsc)) {
		close(fd);
		return;
	}
	if (fd < 0 || stun_client_adopt(tn->loop, fd, &bsc) < 0) {
		event(tn, "birthday", "\"result\":\"%s\"", fd < 0 ? "timeout" : "error");
		return;
	}
	stun_client_set_other(bsc, birthday_other_cb, s);
	stun_client_set_verbose(bsc, tn->o->verbose > 2 ? 2 : 0);
	if (ice_move_socket(s->ice, bsc, from) < 0) {
		stun_client_free(bsc); /* a direct path is open already: keep it */
		return;
	}
	s->bsc = bsc;
	tn->probe.bday_won = true;
	event(tn, "birthday", "\"result\":\"hit\",\"socket\":\"%s\"",
	      addr_str(stun_client_local(bsc), lb));
}

/* Only if the plain checks have not found a direct pair by then. */
static void birthday_start(struct tunnel *tn, struct session *s)
{
	tn->probed = s;
	predict_probe_stop(&tn->probe); /* a new ICE session: a new birthday */
	tn->probe.bday_easy = tn->probe.bday_won = false;
	ev_timer_stop(tn->loop, &tn->bday);
	ev_timer_set(&tn->bday, BIRTHDAY_AFTER_S, 0.);
	ev_timer_start(tn->loop, &tn->bday);
}

/* Checking, or connected over the relay (a short relay-fallback): a
 * direct path may still take over. */
static bool direct_wanted(struct ice *ice)
{
	const struct ice_cand *l = ice_selected_local(ice), *r = ice_selected_remote(ice);

	if (ice_get_state(ice) == ICE_CHECKING)
		return true;
	return ice_get_state(ice) == ICE_CONNECTED && l && r &&
	       (l->type == ICE_CAND_RELAY || r->type == ICE_CAND_RELAY);
}

static void birthday_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct tunnel *tn = w->data;
	struct ice *ice = tn->probed ? tn->probed->ice : NULL;
	const struct ice_checklist *cl;
	int best;

	(void)loop;
	(void)revents;
	if (!ice || !direct_wanted(ice) || sessions_open(tn) > 1)
		return;
	cl = ice_get_checklist(ice);
	best = ice_checklist_best_valid(cl);
	if (best >= 0 && cl->local[cl->pairs[best].local].type != ICE_CAND_RELAY &&
	    cl->remote[cl->pairs[best].remote].type != ICE_CAND_RELAY)
		return;
	if (predict_probe_birthday(&tn->probe, ice, &tn->popts, on_birthday, tn))
		event(tn, "birthday", "\"role\":\"%s\",\"sockets\":%u,\"pps\":%u,"
		      "\"packets\":%u,\"limit_ms\":%u", tn->probe.bday_easy ? "probe" : "sockets",
		      tn->probe.bday_easy ? 1 : birthday_sent(tn->probe.bday), tn->popts.pps,
		      tn->popts.packets, tn->popts.ms);
}


/* Before the checks: the crossing punch (both sides sequential), then the
 * low-TTL and birthday-flag datagrams (client/predict_probe.h). */
static void punch(struct tunnel *tn, struct session *s)
{
	uint16_t to[PREDICT_MAX_WINDOW], from[PREDICT_MAX_WINDOW];
	char tb[PREDICT_MAX_WINDOW * 6 + 1], fb[PREDICT_MAX_WINDOW * 6 + 1];
	int fd = stun_client_fd(tn->sc);
	unsigned n = predict_probe_cross(&tn->probe, s->ice, fd, &tn->popts, to, from);

	if (n) {
		ports_json(tb, sizeof(tb), to, n);
		ports_json(fb, sizeof(fb), from, n);
		event(tn, "cross-punch", "\"window\":%u,\"to\":[%s],\"from\":[%s]", n, tb, fb);
	}
	predict_probe_punch(&tn->probe, s->ice, fd, &tn->popts);
	tn->probe.stale = true; /* the checks make new mappings from here on */
}

static void connect_cb(struct rdv_client *rc, const struct rdv_result *r, void *arg)
{
	struct tunnel *tn = arg;

	(void)rc;
	if ((r->status != 0 || !r->answer) && tn->restarting) {
		event(tn, "restart-failed", "\"reason\":\"%s\"", rdv_reason(tn, r));
		restart_later(tn, 1.0); /* until --timeout */
		return;
	}
	if (r->status != 0 || !r->answer) {
		fail(tn, "%s", rdv_reason(tn, r));
		return;
	}
	if (remote_from_session(&tn->sess[0], r->answer) < 0) {
		fail(tn, "%s", "the peer's answer has no usable candidate");
		return;
	}
	punch(tn, &tn->sess[0]);
	birthday_start(tn, &tn->sess[0]);
	if (ice_start(tn->sess[0].ice) < 0) {
		fail(tn, "%s", "the peer's answer has no usable candidate");
		return;
	}
	event(tn, "checking", "\"remote_candidates\":%u", r->answer->n_cand);
}

/* The session an offer belongs to. Without --expose (stdin/stdout is one
 * stream, it cannot tell peers apart) there is one session: the same user's
 * new offer replaces it (a restart, RFC 8445 s9), another user is Busy.
 * With --expose, an offer from the flow (user and address, as the server
 * saw them) of an open session restarts that session; any other offer gets
 * a free slot, up to max-sessions, else the slot of a session whose path
 * is gone (no agent). NULL: decline with 486. */
static struct session *session_for(struct tunnel *tn, const struct rdv_offer *o)
{
	struct session *free_slot = NULL, *idle = NULL;

	for (unsigned i = 0; i < tn->n_sess; i++) {
		struct session *s = &tn->sess[i];

		if (!s->used) {
			if (!free_slot)
				free_slot = s;
			continue;
		}
		if (!s->ice && !idle)
			idle = s;
		if (strcmp(s->peer_user, o->from))
			continue;
		if (tn->n_sess == 1 || (s->has_peer && o->has_peer &&
					stun_sockaddr_equal(&s->peer, &o->peer)))
			return s;
	}
	if (!free_slot && idle) {
		session_close(idle);
		free_slot = idle;
	}
	return free_slot;
}

/* Answer s->offer: our candidates (the predicted window as it is now),
 * then the punches and the checks. */
static void answer_offer(struct session *s)
{
	struct tunnel *tn = s->tn;
	const struct rdv_offer *o = &s->offer;
	struct rdv_session answer;

	s->waiting = false;
	if (ice_setup(s, false) < 0 || remote_from_session(s, &o->session) < 0) {
		rdv_client_decline(tn->rdv, o->offer_id, 500, "No Candidates", NULL, NULL);
		session_drop_ice(s);
		return;
	}
	session_make(s, &answer);
	answer.tie_breaker = o->session.tie_breaker ^ 1; /* any: the roles are set */
	rdv_client_answer(tn->rdv, o->offer_id, &answer, NULL, NULL);
	punch(tn, s);
	birthday_start(tn, s);
	ice_start(s->ice);
	event(tn, "checking", "\"remote_candidates\":%u", o->session.n_cand);
}

static int offer_start(struct tunnel *tn);

/* predict_probe_refresh() is done: the offers and the restart that waited
 * for a fresh window go on. */
static void refreshed(struct predict_probe *p, void *arg)
{
	struct tunnel *tn = arg;

	event(tn, "allocation", "\"pattern\":\"%s\",\"refreshed\":%s,\"last\":%u,\"delta\":%d",
	      predict_alloc_str(p->alloc), p->stale ? "false" : "true", p->last, p->delta);
	for (unsigned i = 0; i < tn->n_sess; i++)
		if (tn->sess[i].waiting)
			answer_offer(&tn->sess[i]);
	if (tn->restart_waiting) {
		tn->restart_waiting = false;
		if (offer_start(tn) < 0)
			restart_later(tn, 1.0);
	}
}

static void offer_cb(struct rdv_client *rc, const struct rdv_offer *o, void *arg)
{
	struct tunnel *tn = arg;
	struct session *s = session_for(tn, o);
	char pb[64] = "";

	if (o->has_peer)
		addr_str(&o->peer, pb);
	if (!s) {
		event(tn, "busy", "\"from\":\"%s\",\"peer\":\"%s\",\"sessions\":%u", o->from, pb,
		      tn->n_sess);
		rdv_client_decline(rc, o->offer_id, 486, "Busy", NULL, NULL);
		return;
	}
	if (s->ice) /* the same peer restarts (RFC 8445 s9): the new one wins */
		event(tn, "restart", "\"from\":\"%s\",\"session\":%u", o->from,
		      (unsigned)(s - tn->sess));
	session_drop_ice(s);
	s->used = true;
	snprintf(s->peer_user, sizeof(s->peer_user), "%s", o->from);
	s->has_peer = o->has_peer;
	if (o->has_peer)
		s->peer = o->peer;
	event(tn, "offer", "\"from\":\"%s\",\"peer\":\"%s\",\"session\":%u", o->from, pb,
	      (unsigned)(s - tn->sess));
	s->offer = *o;
	if (predict_probe_refresh(&tn->probe, &tn->o->server, refreshed, tn) == 1) {
		s->waiting = true; /* answered once the window is fresh */
		return;
	}
	answer_offer(s);
}

static void register_cb(struct rdv_client *rc, const struct rdv_result *r, void *arg)
{
	struct tunnel *tn = arg;
	char b[64] = "";

	(void)rc;
	if (r->status != 0) {
		fail(tn, "%s", rdv_reason(tn, r));
		return;
	}
	if (r->has_mapped)
		addr_str(&r->mapped, b);
	event(tn, "registered", "\"id\":\"%s\",\"public\":\"%s\",\"lifetime\":%u", tn->o->id, b,
	      r->lifetime);
}

/* ---- the server over TCP/TLS (RFC 8656 s3.1) ---- */

static bool over_stream(const struct tunnel *tn)
{
	return tn->o->transport != SETTINGS_UDP;
}

/* How long a lost connection is tried again: connect's --timeout, listen
 * RECONNECT_S. */
static unsigned reconnect_s(const struct tunnel *tn)
{
	if (tn->o->role == TUNNEL_CONNECT && tn->o->timeout_s > 0)
		return (unsigned)tn->o->timeout_s;
	return RECONNECT_S;
}

/* The connection carried the registration, the allocation and every
 * relayed path: all gone with it. A new connection (reopen_cb) gets a new
 * allocation and registers or offers again, every second until
 * reconnect_s() after the loss; then natclient gives up. */
static void stream_closed(struct stun_client *c, int err, const char *why, void *arg)
{
	struct tunnel *tn = arg;
	const char *tp = settings_transport_str(tn->o->transport);

	(void)c;
	(void)err;
	if (tn->exit_code >= 0)
		return;
	if (!tn->stream_up && !tn->reconnecting) {
		fail(tn, "cannot reach the server %s: %s", tn->o->server_name, why);
		return;
	}
	if (tn->stream_up) {
		event(tn, "server-lost", "\"transport\":\"%s\",\"reason\":\"%s\","
		      "\"reconnect_s\":%u", tp, why, reconnect_s(tn));
		tn->stream_up = false;
		tn->reconnecting = true;
		tn->reconnect_until = ev_now(tn->loop) + reconnect_s(tn);
		tn->restarting = tn->o->role == TUNNEL_CONNECT; /* no "disconnected" */
	} else {
		event(tn, "reconnect-failed", "\"reason\":\"%s\"", why);
	}
	if (ev_now(tn->loop) >= tn->reconnect_until) {
		fail(tn, "the %s connection to the server %s is gone (%s) and did not come back "
		     "within %u s: the session went with it (registration, relay, path)", tp,
		     tn->o->server_name, why, reconnect_s(tn));
		return;
	}
	ev_io_stop(tn->loop, &tn->in);
	ev_timer_stop(tn->loop, &tn->reopen);
	ev_timer_set(&tn->reopen, tn->reconnects ? 1.0 : 0., 0.);
	ev_timer_start(tn->loop, &tn->reopen);
}

static int start(struct tunnel *tn);

/* Everything that lived on the old connection goes: the agents (they hold
 * the allocation), the allocation, the rendezvous, the stun_client. The
 * --local and --expose sockets and their flows stay. */
static void stream_teardown(struct tunnel *tn)
{
	for (unsigned i = 0; i < tn->n_sess; i++)
		session_drop_ice(&tn->sess[i]);
	turn_client_free(tn->turn);
	tn->turn = NULL;
	rdv_client_free(tn->rdv);
	tn->rdv = NULL;
	stun_client_free(tn->sc);
	tn->sc = NULL;
	tn->turn_done = tn->srflx_done = false;
	tn->turn_status = 0;
}

static void reopen_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct tunnel *tn = w->data;
	int err;

	(void)loop;
	(void)revents;
	tn->reconnects++;
	event(tn, "reconnect", "\"attempt\":%u", tn->reconnects);
	/* an ICE restart the old path's end scheduled: this one replaces it */
	ev_timer_stop(tn->loop, &tn->restart);
	stream_teardown(tn);
	err = start(tn); /* a failed connection comes back through stream_closed */
	if (err < 0 && tn->exit_code < 0 && !ev_is_active(&tn->reopen))
		stream_closed(NULL, err, strerror(-err), tn);
}

static void stream_init(struct tunnel *tn)
{
	ev_timer_init(&tn->reopen, reopen_cb, 0., 0.);
	tn->reopen.data = tn;
}

static void stream_cleanup(struct tunnel *tn)
{
	ev_timer_stop(tn->loop, &tn->reopen);
}

static int open_stream(struct tunnel *tn)
{
	struct stun_stream_opts so = { .tls = tn->o->transport == SETTINGS_TLS,
				       .host = tn->o->server_host, .ca_file = tn->o->ca,
				       .insecure = tn->o->insecure };
	char err[512];
	int rc = stun_client_open_stream(tn->loop, &tn->o->server, &so, &tn->sc, err,
					 sizeof(err));

	if (rc < 0) {
		fail(tn, "%s", err);
		return rc;
	}
	stun_client_set_closed(tn->sc, stream_closed, tn);
	tn->popts.enabled = false; /* no UDP of ours to predict or probe */
	if (tn->reconnects)
		return 0;
	event(tn, "transport", "\"transport\":\"%s\",\"server\":\"%s\",\"candidates\":"
	      "\"relay only: over %s no host, server-reflexive or predicted candidates\"",
	      settings_transport_str(tn->o->transport), tn->o->server_name,
	      settings_transport_str(tn->o->transport));
	return 0;
}

/* Over a stream the relayed candidate is the only one: no relay, no path. */
static int stream_gathered(struct tunnel *tn)
{
	if (tn->exit_code >= 0)
		return -ENOTCONN;
	if (tn->reconnecting && tn->turn_status && tn->turn_status != -EACCES)
		return -EAGAIN; /* the new connection failed: stream_closed retries */
	if (tn->turn_status == -EACCES) {
		fail(tn, "the server rejected user \"%s\" (401): check user and password "
		     "(--config FILE, NATCLIENT_USER, NATCLIENT_PASSWORD)", tn->cred.user);
		return -EACCES;
	}
	if (tn->turn_status) {
		fail(tn, "no relay over %s (the only path without UDP): %s",
		     settings_transport_str(tn->o->transport), turn_client_strerror(tn->turn_status));
		return -ENOTCONN;
	}
	tn->stream_up = true; /* from now on a closed connection is a lost session */
	if (tn->reconnecting)
		event(tn, "reconnected", "\"attempt\":%u", tn->reconnects);
	tn->reconnecting = false;
	return 0;
}

/* ---- the run ---- */

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct tunnel *tn = w->data;

	(void)loop;
	(void)revents;
	fail(tn, "no path opened within %.0f s (--timeout)", tn->o->timeout_s);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	finish(w->data, 0);
}

/* connect: a fresh ICE agent (new credentials) and its offer. */
static int offer_start(struct tunnel *tn)
{
	struct rdv_session offer;
	int err;

	tn->sess[0].used = true;
	err = ice_setup(&tn->sess[0], true);
	if (err < 0)
		return err;
	session_make(&tn->sess[0], &offer);
	offer.tie_breaker = ice_tie_breaker_random();
	return rdv_client_connect(tn->rdv, tn->o->id, &offer, connect_cb, tn);
}

static void restart_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct tunnel *tn = w->data;

	(void)loop;
	(void)revents;
	session_drop_ice(&tn->sess[0]); /* the --local flows stay */
	tn->restarts++;
	event(tn, "restart", "\"attempt\":%u", tn->restarts);
	if (predict_probe_refresh(&tn->probe, &tn->o->server, refreshed, tn) == 1) {
		tn->restart_waiting = true; /* the offer once the window is fresh */
		return;
	}
	if (offer_start(tn) < 0)
		restart_later(tn, 1.0);
}

/* The UDP socket everything shares. */
static int open_udp(struct tunnel *tn)
{
	stun_sockaddr bind_addr, src;
	int err;

	/* a wildcard: host candidates on every usable interface address
	 * (ice_gather_host_for), known to the server by the route's source */
	err = stun_route_source(&tn->o->server, &src);
	if (err < 0)
		return err;
	memset(&bind_addr, 0, sizeof(bind_addr));
	bind_addr.sa.sa_family = src.sa.sa_family;
	err = stun_client_open(tn->loop, &bind_addr, &tn->sc);
	if (err < 0)
		return err;
	stun_client_set_local_ip(tn->sc, &src);
	return 0;
}

static int start(struct tunnel *tn)
{
	int err;

	err = over_stream(tn) ? open_stream(tn) : open_udp(tn);
	if (err < 0)
		return err;
	stun_client_set_verbose(tn->sc, tn->o->verbose > 2 ? 2 : 0);
	err = rdv_client_new(tn->sc, &tn->o->server, &tn->cred, &tn->rdv);
	if (err < 0)
		return err;
	rdv_client_set_other(tn->rdv, other_cb, tn);
	if (tn->o->has_local && tn->app_fd < 0 && (err = open_app(tn)) < 0)
		return err;
	err = gather(tn);
	if (err < 0)
		return err;
	if (tn->o->role == TUNNEL_LISTEN) {
		rdv_client_on_offer(tn->rdv, offer_cb, tn);
		return rdv_client_register(tn->rdv, tn->o->id, 0, register_cb, tn);
	}
	ev_timer_start(tn->loop, &tn->timeout);
	return offer_start(tn);
}

static void cleanup(struct tunnel *tn)
{
	ev_io_stop(tn->loop, &tn->in);
	ev_io_stop(tn->loop, &tn->app);
	ev_timer_stop(tn->loop, &tn->timeout);
	ev_timer_stop(tn->loop, &tn->bday);
	ev_timer_stop(tn->loop, &tn->restart);
	ev_signal_stop(tn->loop, &tn->sigint);
	ev_signal_stop(tn->loop, &tn->sigterm);
	stream_cleanup(tn);
	predict_probe_free(&tn->probe);
	for (unsigned i = 0; i < tn->n_sess; i++)
		session_close(&tn->sess[i]);
	free(tn->sess);
	turn_client_free(tn->turn);
	rdv_client_free(tn->rdv);
	stun_client_free(tn->sc);
	if (tn->app_fd >= 0)
		close(tn->app_fd);
}

/* listen --expose: max-sessions slots; otherwise one (see session_for). */
static int sessions_init(struct tunnel *tn)
{
	const struct tunnel_opts *o = tn->o;

	tn->n_sess = 1;
	if (o->role == TUNNEL_LISTEN && o->has_expose)
		tn->n_sess = o->max_sessions ? o->max_sessions : MAX_SESSIONS_DEFAULT;
	tn->sess = calloc(tn->n_sess, sizeof(*tn->sess));
	if (!tn->sess) {
		tn->n_sess = 0;
		return -ENOMEM;
	}
	for (unsigned i = 0; i < tn->n_sess; i++) {
		tn->sess[i].tn = tn;
		ev_timer_init(&tn->sess[i].reap, reap_cb, 0., 0.);
		tn->sess[i].reap.data = &tn->sess[i];
	}
	return 0;
}

int tunnel_run(const struct tunnel_opts *o)
{
	struct tunnel *tn = calloc(1, sizeof(*tn));
	int err, code;

	if (!tn)
		return 1;
	tn->o = o;
	tn->loop = ev_default_loop(0);
	tn->t0 = ev_now(tn->loop);
	tn->exit_code = -1;
	tn->app_fd = -1;
	stun_cred_init(&tn->cred, o->user, o->password);
	tn->popts = o->predict;
	if (!tn->popts.window)
		predict_opts_default(&tn->popts);
	ev_io_init(&tn->in, stdin_cb, 0, EV_READ);
	tn->in.data = tn;
	ev_timer_init(&tn->timeout, timeout_cb, o->timeout_s > 0 ? o->timeout_s : 30., 0.);
	tn->timeout.data = tn;
	ev_timer_init(&tn->bday, birthday_timer_cb, 0., 0.);
	tn->bday.data = tn;
	ev_timer_init(&tn->restart, restart_cb, 0., 0.);
	tn->restart.data = tn;
	stream_init(tn);
	ev_signal_init(&tn->sigint, signal_cb, SIGINT);
	ev_signal_init(&tn->sigterm, signal_cb, SIGTERM);
	tn->sigint.data = tn->sigterm.data = tn;
	ev_signal_start(tn->loop, &tn->sigint);
	ev_signal_start(tn->loop, &tn->sigterm);
	err = sessions_init(tn);
	if (!err)
		err = start(tn);
	if (err < 0 && tn->exit_code < 0)
		fail(tn, "%s", err == -EHOSTUNREACH ? "no answer from the server (check --server; "
			       "where UDP is blocked, --server tcp://HOST or tls://HOST)"
						    : strerror(-err));
	if (tn->exit_code < 0)
		ev_run(tn->loop, 0);
	code = tn->exit_code < 0 ? 0 : tn->exit_code;
	cleanup(tn);
	free(tn);
	return code;
}
