/* turn_dispatch: the TURN relay's seams with the server core. */
#include "turn_dispatch.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "peer_filter.h"
#include "rdv_service.h"
#include "tcp_handoff.h"
#include "turn.h"
#include "turn_internal.h"

/* ---- process-wide ------------------------------------------------------ */

static int make_auth(const struct config *cfg, struct auth_ctx **out, char *err,
		     size_t errlen)
{
	struct auth_cred *creds;
	struct auth_params p = { 0 };
	int r;

	/* no credentials: requests are refused, or served with no-auth
	 * (turn_service_set_auth) */
	if (!config_has_credentials(cfg))
		return 0;
	creds = calloc(cfg->n_users ? cfg->n_users : 1, sizeof(*creds));
	if (!creds)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_users; i++)
		creds[i] = (struct auth_cred){ cfg->users[i].name, cfg->users[i].password };
	p.realm = cfg->realm;
	p.creds = creds;
	p.n_creds = cfg->n_users;
	p.secrets = (const char *const *)cfg->secrets;
	p.n_secrets = cfg->n_secrets;
	r = auth_ctx_new(&p, out, err, errlen);
	free(creds);
	return r;
}

/* The server's own addresses: every listening address with its port (so
 * that with allow-loopback-peers only those ports are refused on
 * loopback), each relay-ip likewise, external-ip whole. */
static size_t self_addrs(const struct stund_shared *sh, const struct config *cfg,
			 stun_sockaddr *out, size_t cap, bool *wildcard)
{
	size_t n = 0;

	*wildcard = false;
	for (int i = 0; i < sh->laddrs.n && n < cap; i++) {
		out[n++] = sh->laddrs.a[i].addr;
		*wildcard |= sh->laddrs.a[i].wildcard;
	}
	for (int i = 0; i < cfg->n_relay_ip && n < cap; i++) {
		out[n] = cfg->relay_ip[i];
		if (out[n].sa.sa_family == AF_INET)
			out[n].in4.sin_port = htons(cfg->listening_port);
		else
			out[n].in6.sin6_port = htons(cfg->listening_port);
		n++;
	}
	if (cfg->has_external_ip && n < cap)
		out[n++] = cfg->external_ip;
	return n;
}

static int make_filter(const struct stund_shared *sh, const struct config *cfg,
		       struct peer_filter **out, char *err, size_t errlen)
{
	stun_sockaddr self[LADDR_MAX + CFG_MAX_RELAY + 1];
	struct peer_filter_params p = { 0 };

	p.allow_loopback = cfg->allow_loopback_peers;
	p.allowed_ranges = cfg->allowed_peer;
	p.n_allowed_ranges = cfg->n_allowed_peer;
	p.denied_ranges = cfg->denied_peer;
	p.n_denied_ranges = cfg->n_denied_peer;
	p.self = self;
	p.n_self = self_addrs(sh, cfg, self, sizeof(self) / sizeof(self[0]),
			      &p.self_interfaces);
	return peer_filter_new(&p, out, err, errlen);
}

/* Both from one config, or neither. */
static int make_policy(const struct stund_shared *sh, const struct config *cfg,
		       struct auth_ctx **auth, struct peer_filter **filter, char *err,
		       size_t errlen)
{
	int r;

	*auth = NULL;
	*filter = NULL;
	r = make_auth(cfg, auth, err, errlen);
	if (!r)
		r = make_filter(sh, cfg, filter, err, errlen);
	if (!r)
		return 0;
	auth_ctx_free(*auth);
	*auth = NULL;
	return r;
}

void turn_dispatch_auth_warning(const struct config *cfg)
{
	if (config_has_credentials(cfg))
		return;
	if (cfg->no_auth) {
		log_msg(LOG_WARN, "no-auth: TURN and rendezvous requests are served WITHOUT "
			"authentication: this is an open relay; use it on a closed test network only");
		return;
	}
	log_msg(LOG_WARN, "no user, userdb or static-auth-secret configured: TURN and "
		"rendezvous requests are refused with 403 (Binding is served); add "
		"`user = NAME:PASSWORD` to the config, or set no-auth for an open relay");
}

int turn_dispatch_setup(struct stund_shared *sh, const struct config *cfg, char *err,
			size_t errlen)
{
	struct auth_ctx *auth;
	struct peer_filter *filter;
	int r = turn_shared_new(cfg, &sh->turn, err, errlen);

	if (!r && tcp_handoff_setup(sh))
		r = -ENOMEM;
	/* each worker builds its own; this shows errors before "ready" */
	if (!r)
		r = make_policy(sh, cfg, &auth, &filter, err, errlen);
	if (r) {
		turn_dispatch_teardown(sh);
		return r;
	}
	auth_ctx_free(auth);
	peer_filter_free(filter);
	return 0;
}

void turn_dispatch_teardown(struct stund_shared *sh)
{
	turn_shared_free(sh->turn);
	sh->turn = NULL;
	tcp_handoff_teardown(sh);
}

/* ---- per worker ---------------------------------------------------------- */

int turn_dispatch_worker_start(struct worker *w)
{
	char err[CFG_ERR_MAX];
	int r;

	if (!w->shared->turn)
		return 0;
	w->turn = turn_service_new(w->loop, w->shared->turn, w->cfg);
	if (!w->turn)
		return -ENOMEM;
	r = make_policy(w->shared, w->cfg, &w->turn_auth, &w->turn_filter, err, sizeof(err));
	if (r) {
		log_msg(LOG_ERROR, "worker %d: TURN: %s", w->id, err);
		return r;
	}
	turn_service_set_auth(w->turn, w->turn_auth, w->cfg->no_auth);
	turn_service_set_filter(w->turn, w->turn_filter);
	w->turn->worker_id = (uint8_t)w->id;
	return tcp_handoff_worker_start(w);
}

/* In the worker, after it took a new config: new users, secrets, realm and
 * peer policy; nonces already handed out stay valid. */
void turn_dispatch_worker_reload(struct worker *w)
{
	char err[CFG_ERR_MAX];
	struct auth_ctx *auth;
	struct peer_filter *filter;

	if (!w->turn)
		return;
	turn_service_reload(w->turn, w->cfg);
	if (make_policy(w->shared, w->cfg, &auth, &filter, err, sizeof(err))) {
		log_msg(LOG_ERROR, "worker %d: TURN keeps its credentials and peer policy: %s",
			w->id, err);
		return;
	}
	if (auth && w->turn_auth)
		auth_ctx_keep_nonces(auth, w->turn_auth);
	turn_service_set_auth(w->turn, auth, w->cfg->no_auth);
	turn_service_set_filter(w->turn, filter);
	auth_ctx_free(w->turn_auth);
	peer_filter_free(w->turn_filter);
	w->turn_auth = auth;
	w->turn_filter = filter;
}

void turn_dispatch_worker_free(struct worker *w)
{
	if (w->turn)
		tcp_handoff_worker_stop(w);
	turn_service_free(w->turn);
	auth_ctx_free(w->turn_auth);
	peer_filter_free(w->turn_filter);
	w->turn = NULL;
	w->turn_auth = NULL;
	w->turn_filter = NULL;
}

/* ---- links ------------------------------------------------------------------ */

static int stream_send(void *conn, const uint8_t *buf, size_t len)
{
	return stream_conn_send(conn, buf, len);
}

/* The 5-tuple and the way back to the client. */
static int link_of(struct worker *w, const struct stun_in *in, struct turn_link *l)
{
	memset(l, 0, sizeof(*l));
	l->client = *in->peer;
	l->local = w->shared->laddrs.a[in->laddr].addr;
	l->udp_fd = -1;
	l->proto = in->tp == TP_UDP || in->tp == TP_DTLS ? IPPROTO_UDP : IPPROTO_TCP;
	switch (in->tp) {
	case TP_UDP: /* the send-only twin when there is one (listener_udp.c) */
		l->udp_fd = w->udp[in->laddr].tx_fd >= 0 ? w->udp[in->laddr].tx_fd
							 : w->udp[in->laddr].fd;
		return 0;
	case TP_TCP:
		l->send = stream_send;
		l->conn = l->stream = in->conn;
		return 0;
	default: /* TLS and DTLS: through the session, when the listener gives one */
		l->send = in->sess_send;
		l->conn = in->sess;
		return l->send ? 0 : -EPROTONOSUPPORT;
	}
}

/* RFC 6062 s5.4: a ConnectionBind on a TCP connection the kernel gave to
 * another worker than the one holding its CONNECTION-ID (which names its
 * worker in the low byte, turn_tcp.c): the connection moves there and the
 * request is handled there, authentication included. */
static bool hand_off(struct worker *w, const struct stun_msg *m, const struct stun_in *in)
{
	int owner;

	if (m->method != STUN_METHOD_CONNECTION_BIND || in->tp != TP_TCP ||
	    w->shared->n_workers < 2 || !stun_msg_has(m, STUN_ATTR_CONNECTION_ID))
		return false;
	owner = (int)(m->connection_id & TURN_CONN_ID_WORKER_MASK);
	if (owner == w->id || owner >= w->shared->n_workers)
		return false;
	((struct stream_conn *)in->conn)->handoff_to = owner + 1;
	return true;
}

void turn_dispatch_handoff(struct stream_conn *c, const uint8_t *frame, size_t len)
{
	struct stund_shared *sh = c->w->shared;
	int to = c->handoff_to - 1, laddr = c->laddr;
	stun_sockaddr peer = c->peer;
	uint8_t *copy = malloc(len); /* frame may sit in c's receive buffer */
	int fd;

	turn_dispatch_conn_closed(c); /* not a TURN control connection any more */
	rdv_service_conn_closed(c);
	if (copy)
		memcpy(copy, frame, len);
	fd = stream_conn_detach(c);
	if (!copy) {
		close(fd);
		__atomic_sub_fetch(&sh->conns, 1, __ATOMIC_RELAXED);
		return;
	}
	if (tcp_handoff_post(sh, to, fd, laddr, &peer, copy, len))
		log_peer(LOG_INFO, &peer.sa, "turn: ConnectionBind for worker %d: cannot hand over", to);
	free(copy);
}

void turn_dispatch_request(struct worker *w, const struct stun_msg *m,
			   const struct stun_in *in, struct stun_out *out)
{
	struct turn_link link;
	int len;

	if (hand_off(w, m, in)) {
		out->len = 0;
		return;
	}
	if (!w->turn || link_of(w, in, &link)) {
		dispatch_error(w, m, out, STUN_ERR_UNSUPPORTED_TRANSPORT,
			       "TURN is not offered on this transport");
		return;
	}
	len = turn_handle_request(w->turn, &link, m, out->buf, out->cap);
	out->len = len > 0 ? (size_t)len : 0;
	/* TURN answers are bounded (no PADDING, no echo of the request): the
	 * amplification guard, made for Binding, does not apply */
	out->authenticated = true;
}

void turn_dispatch_send(struct worker *w, const struct stun_msg *m, const struct stun_in *in)
{
	struct turn_link link;

	if (w->turn && !link_of(w, in, &link))
		turn_handle_send(w->turn, &link, m);
}

void turn_dispatch_channel_data(struct worker *w, const struct stun_in *in)
{
	struct turn_link link;

	if (w->turn && !link_of(w, in, &link))
		turn_handle_channel_data(w->turn, &link, in->buf, in->len);
}

bool turn_dispatch_legacy_channel(struct worker *w, const struct stun_in *in)
{
	if (!w->cfg->rfc5766_channels || !in->len || in->buf[0] < 0x50 || in->buf[0] > 0x7F)
		return false;
	turn_dispatch_channel_data(w, in);
	return true;
}

void turn_dispatch_flush(struct worker *w)
{
	if (w->turn)
		turn_flush(w->turn);
}

void turn_dispatch_sess_closed(struct worker *w, const struct stun_in *in)
{
	struct turn_link link;

	if (w->turn && !link_of(w, in, &link))
		turn_link_closed(w->turn, &link);
}

void turn_dispatch_conn_closed(struct stream_conn *c)
{
	struct worker *w = c->w;
	struct stun_in in = { .peer = &c->peer, .laddr = c->laddr, .tp = TP_TCP, .conn = c };
	struct turn_link link;

	if (c->raw) {
		turn_tcp_client_closed(c->raw_arg); /* an RFC 6062 data connection */
		return;
	}
	if (w->turn && !link_of(w, &in, &link))
		turn_link_closed(w->turn, &link);
}
