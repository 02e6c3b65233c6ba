/* stun_client: STUN transactions over one UDP socket (see stun_client.h). */
#include "stun_client.h"
#include "rto_cache.h"
#include "stun_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <linux/errqueue.h>
#include <netinet/in.h>

#include <mbedtls/base64.h>

#define TXN_BUF_MAX 1500
#define AUTH_TRIES_MAX 3
#define RECV_BATCH 64
#define NONCE_COOKIE "obMatJos2"
#define NONCE_COOKIE_LEN 9

struct stun_txn {
	struct stun_txn *next;
	struct stun_client *c;
	struct stun_request req;   /* copy: dest, callbacks, borrowed cred */
	struct stun_rto rto;
	uint8_t tid[STUN_TID_LEN];
	uint8_t first_tid[STUN_TID_LEN];
	uint8_t buf[TXN_BUF_MAX];
	size_t len;
	unsigned sends;
	unsigned auth_tries;
	bool authed;               /* this attempt carries long-term integrity */
	uint8_t short_key[STUN_KEY_MAX * 8];
	size_t short_keylen;       /* > 0: short-term MESSAGE-INTEGRITY */
	bool bad_integrity;        /* a response failed the integrity check */
	bool quiet;                /* stun_client_quiet(): no more sends */
	bool cached_rto;           /* started with the server's cached RTO */
	ev_tstamp t0;
	ev_timer timer;
};

struct stun_client {
	struct ev_loop *loop;
	int fd;
	ev_io io;
	stun_sockaddr local;       /* what stun_client_local() says */
	stun_sockaddr bound;       /* the socket's own address (maybe a wildcard) */
	struct stun_rto rto;
	struct rto_cache rtoc;     /* RFC 8489 s6.2.1: RTO per server */
	struct stun_txn *txns;
	unsigned n_txns;
	stun_other_cb other;
	void *other_arg;
	/* a stream (TCP/TLS) to the server instead of the UDP socket */
	struct stun_stream *stream;
	stun_sockaddr server;
	stun_closed_cb closed;
	void *closed_arg;
	int verbose;
	int depth;                 /* > 0 while inside one of our callbacks */
	bool dead;                 /* freed while depth > 0 */
	struct stun_client_stats stats;
	uint8_t rbuf[STUN_MAX_MSG_LEN];
};

unsigned stun_rto_delay(const struct stun_rto *p, unsigned i)
{
	unsigned rc = p->rc ? p->rc : 1;

	/* RFC 8489 s6.2.1: the interval doubles after each retransmission;
	 * after the last of Rc requests the client waits Rm * RTO. */
	if (i + 1 >= rc)
		return p->rm * p->rto_ms;
	if (i > 20)
		i = 20;
	return p->rto_ms << i;
}

unsigned stun_rto_total(const struct stun_rto *p)
{
	unsigned rc = p->rc ? p->rc : 1, total = 0;

	for (unsigned i = 0; i < rc; i++)
		total += stun_rto_delay(p, i);
	return total;
}

void stun_cred_init(struct stun_cred *c, const char *user, const char *password)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->user, sizeof(c->user), "%s", user ? user : "");
	snprintf(c->password, sizeof(c->password), "%s", password ? password : "");
}

const char *stun_txn_status_str(enum stun_txn_status s)
{
	switch (s) {
	case STUN_TXN_SUCCESS: return "success";
	case STUN_TXN_ERROR_RESP: return "error response";
	case STUN_TXN_TIMEOUT: return "no response (timed out)";
	case STUN_TXN_INTEGRITY: return "responses failed the integrity check";
	case STUN_TXN_AUTH_FAILED: return "authentication failed (wrong user or password?)";
	case STUN_TXN_SEND_FAILED: return "could not send";
	case STUN_TXN_UNREACHABLE: return "unreachable (ICMP error)";
	case STUN_TXN_CANCELLED: return "cancelled";
	}
	return "?";
}

static void vlog(const struct stun_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void vlog(const struct stun_client *c, const char *fmt, ...)
{
	va_list ap;

	if (c->verbose < 2)
		return;
	va_start(ap, fmt);
	fputs("stun: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---- credentials ---- */

/* The security features of a nonce that starts with the cookie (RFC 8489
 * s9.2, s18.1); 0 without the cookie. */
static uint32_t nonce_features(const struct stun_bytes *nonce)
{
	unsigned char out[4];
	size_t olen = 0;

	if (nonce->len < NONCE_COOKIE_LEN + 4 ||
	    memcmp(nonce->p, NONCE_COOKIE, NONCE_COOKIE_LEN))
		return 0;
	if (mbedtls_base64_decode(out, sizeof(out), &olen, nonce->p + NONCE_COOKIE_LEN, 4) ||
	    olen != 3)
		return 0;
	return (uint32_t)out[0] << 16 | (uint32_t)out[1] << 8 | out[2];
}

static void copy_bytes(char *dst, size_t cap, const struct stun_bytes *b)
{
	size_t n = b->len < cap - 1 ? b->len : cap - 1;

	memcpy(dst, b->p, n);
	dst[n] = '\0';
}

/* s9.2.5: pick the first algorithm we support from PASSWORD-ALGORITHMS. */
static int pick_alg(const struct stun_msg *m, struct stun_cred *cred)
{
	cred->n_pw_algs = 0;
	cred->mi256 = false;
	if (!stun_msg_has(m, STUN_ATTR_PASSWORD_ALGORITHMS))
		return STUN_PWALG_MD5;
	int alg = 0;
	for (unsigned i = 0; i < m->n_pw_algs && i < STUN_MAX_PW_ALGS; i++) {
		uint16_t a = m->pw_algs[i].alg;
		cred->pw_algs[cred->n_pw_algs++] = a;
		if (!alg && (a == STUN_PWALG_MD5 || a == STUN_PWALG_SHA256))
			alg = a;
	}
	/* "all the subsequent requests MUST be authenticated using
	 * MESSAGE-INTEGRITY-SHA256 only" */
	cred->mi256 = true;
	return alg;
}

/* Take REALM, NONCE and the algorithm from a 401/438. Returns 0, or < 0 when
 * the RFC forbids a retry. */
static int cred_update(struct stun_cred *cred, const struct stun_msg *m)
{
	if (!stun_msg_has(m, STUN_ATTR_NONCE))
		return -EPROTO;
	uint32_t feat = nonce_features(&m->nonce);
	/* s9.2.5: the cookie promises PASSWORD-ALGORITHMS; without it, no retry */
	if ((feat & STUN_FEATURE_PW_ALGS) && !stun_msg_has(m, STUN_ATTR_PASSWORD_ALGORITHMS))
		return -EPROTO;
	if (stun_msg_has(m, STUN_ATTR_REALM))
		copy_bytes(cred->realm, sizeof(cred->realm), &m->realm);
	else if (!cred->realm[0])
		return -EPROTO;
	copy_bytes(cred->nonce, sizeof(cred->nonce), &m->nonce);
	int alg = pick_alg(m, cred);
	if (!alg)
		return -ENOTSUP; /* s9.2.5: no algorithm we support: no retry */
	cred->alg = alg;
	cred->userhash = feat & STUN_FEATURE_USERHASH;
	int n = stun_key_long_term(alg, cred->user, cred->realm, cred->password, cred->key);
	if (n < 0)
		return n;
	cred->keylen = n;
	return 0;
}

void stun_client_add_auth(struct stun_builder *b, const struct stun_cred *cred)
{
	if (!cred || !cred->alg)
		return;
	if (cred->userhash) {
		uint8_t h[STUN_USERHASH_LEN];
		if (stun_userhash(cred->user, cred->realm, h) < 0) {
			b->err = STUN_E_ARG;
			return;
		}
		stun_build_bytes(b, STUN_ATTR_USERHASH, h, sizeof(h));
	} else {
		stun_build_str(b, STUN_ATTR_USERNAME, cred->user);
	}
	stun_build_str(b, STUN_ATTR_REALM, cred->realm);
	stun_build_str(b, STUN_ATTR_NONCE, cred->nonce);
	if (cred->n_pw_algs) {
		stun_build_pw_algs(b, cred->pw_algs, cred->n_pw_algs);
		/* PASSWORD-ALGORITHM: algorithm, zero-length parameters */
		stun_build_u32(b, STUN_ATTR_PASSWORD_ALGORITHM, (uint32_t)cred->alg << 16);
	}
	if (cred->mi256)
		stun_build_mi256(b, cred->key, cred->keylen);
	else
		stun_build_mi(b, cred->key, cred->keylen);
}

/* ---- transactions ---- */

static int txn_build(struct stun_txn *t)
{
	struct stun_builder b;

	if (getrandom(t->tid, sizeof(t->tid), 0) != (ssize_t)sizeof(t->tid))
		return -errno;
	stun_build_init(&b, t->buf, sizeof(t->buf), t->req.method, STUN_CLASS_REQUEST, t->tid);
	if (t->req.attrs)
		t->req.attrs(&b, t->req.attrs_arg);
	/* s9.2.3.1: the first request carries no credentials; later ones the
	 * cached realm and nonce (s9.2.3.2). */
	t->authed = t->req.cred && t->req.cred->alg;
	if (t->authed)
		stun_client_add_auth(&b, t->req.cred);
	else if (t->short_keylen)
		stun_build_mi(&b, t->short_key, t->short_keylen); /* s9.1.2 */
	if (t->req.fingerprint)
		stun_build_fingerprint(&b);
	int n = stun_build_finish(&b);
	if (n < 0)
		return n;
	t->len = (size_t)n;
	return 0;
}

static int txn_send(struct stun_txn *t)
{
	struct stun_client *c = t->c;

	if (t->req.send) {
		int err = t->req.send(t->req.send_ctx, &t->req.dest, t->buf, t->len);
		if (err < 0)
			return err;
	} else {
		int err = stun_client_send(c, &t->req.dest, t->buf, t->len);
		if (err < 0)
			return err;
	}
	if (t->sends)
		c->stats.retransmits++;
	c->stats.tx_requests++;
	t->sends++;
	return 0;
}

static void txn_arm(struct stun_txn *t)
{
	ev_timer_stop(t->c->loop, &t->timer);
	ev_timer_set(&t->timer, stun_rto_delay(&t->rto, t->sends - 1) / 1000.0, 0.);
	ev_timer_start(t->c->loop, &t->timer);
}

static void txn_unlink(struct stun_txn *t)
{
	struct stun_client *c = t->c;

	for (struct stun_txn **pp = &c->txns; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			c->n_txns--;
			break;
		}
	}
	ev_timer_stop(c->loop, &t->timer);
}

static void really_free(struct stun_client *c);

/* Unlink, report, free. The callback may start or cancel transactions or
 * free the client (deferred through depth/dead). */
static void txn_finish(struct stun_txn *t, struct stun_txn_result *r)
{
	struct stun_client *c = t->c;

	txn_unlink(t);
	r->sends = t->sends;
	if (!r->rtt_ms)
		r->rtt_ms = (unsigned)((ev_now(c->loop) - t->t0) * 1000.0);
	if (t->cached_rto && t->sends &&
	    (r->status == STUN_TXN_SUCCESS || r->status == STUN_TXN_ERROR_RESP))
		rto_cache_done(&c->rtoc, &t->req.dest, ev_now(c->loop), t->sends, r->rtt_ms,
			       t->rto.rto_ms << (t->sends - 1));
	c->depth++;
	if (t->req.cb)
		t->req.cb(c, r, t->req.arg);
	c->depth--;
	free(t);
	if (c->dead && !c->depth)
		really_free(c);
}

static void txn_fail(struct stun_txn *t, enum stun_txn_status st, int sys_err)
{
	struct stun_txn_result r = { .status = st, .sys_err = sys_err };

	txn_finish(t, &r);
}

static void txn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct stun_txn *t = w->data;
	struct stun_client *c = t->c;
	int err;

	(void)loop;
	(void)revents;
	unsigned rc = t->rto.rc ? t->rto.rc : 1;
	if (t->sends >= rc) {
		c->stats.timeouts++;
		vlog(c, "%s: no response after %u requests", stun_method_name(t->req.method),
		     t->sends);
		/* s9.2.5: only bad-integrity responses: say so, not "timeout" */
		txn_fail(t, t->quiet ? STUN_TXN_CANCELLED
			 : t->bad_integrity ? STUN_TXN_INTEGRITY : STUN_TXN_TIMEOUT, 0);
		return;
	}
	err = txn_send(t);
	if (err < 0) {
		txn_fail(t, STUN_TXN_SEND_FAILED, -err);
		return;
	}
	txn_arm(t);
}

/* (Re)start an attempt with a fresh transaction ID. */
static int txn_start(struct stun_txn *t)
{
	int err = txn_build(t);

	if (err < 0)
		return err;
	t->sends = 0;
	t->bad_integrity = false;
	t->t0 = ev_now(t->c->loop);
	err = txn_send(t);
	if (err < 0)
		return err;
	vlog(t->c, "-> %s request (%zu bytes%s)", stun_method_name(t->req.method), t->len,
	     t->authed ? ", authenticated" : "");
	txn_arm(t);
	return 0;
}

int stun_client_request(struct stun_client *c, const struct stun_request *r,
			uint8_t tid_out[STUN_TID_LEN])
{
	struct stun_txn *t;
	int err;

	if (c->dead)
		return -ESHUTDOWN;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->c = c;
	t->req = *r;
	t->rto = r->rto ? *r->rto : c->rto;
	if (c->stream && !r->send) {
		/* RFC 8489 s6.2.2: over a reliable transport no retransmissions;
		 * the transaction fails after Ti = 39.5 s */
		t->rto = (struct stun_rto){ STUN_STREAM_TI_MS, 1, 1 };
	} else if (!r->rto) { /* RFC 8489 s6.2.1: the RTO cached for this server */
		t->cached_rto = true;
		t->rto.rto_ms = rto_cache_get(&c->rtoc, &r->dest, ev_now(c->loop), c->rto.rto_ms);
	}
	if (r->short_key) {
		if (r->short_keylen > sizeof(t->short_key)) {
			free(t);
			return -EINVAL;
		}
		memcpy(t->short_key, r->short_key, r->short_keylen);
		t->short_keylen = r->short_keylen;
		t->req.short_key = NULL;
	}
	ev_timer_init(&t->timer, txn_timer_cb, 0., 0.);
	t->timer.data = t;
	err = txn_start(t);
	if (err < 0) {
		ev_timer_stop(c->loop, &t->timer);
		free(t);
		return err;
	}
	memcpy(t->first_tid, t->tid, STUN_TID_LEN);
	if (tid_out)
		memcpy(tid_out, t->tid, STUN_TID_LEN);
	t->next = c->txns;
	c->txns = t;
	c->n_txns++;
	return 0;
}

void stun_client_cancel(struct stun_client *c, const uint8_t tid[STUN_TID_LEN])
{
	for (struct stun_txn *t = c->txns; t; t = t->next) {
		if (!memcmp(t->tid, tid, STUN_TID_LEN) || !memcmp(t->first_tid, tid, STUN_TID_LEN)) {
			txn_fail(t, STUN_TXN_CANCELLED, 0);
			return;
		}
	}
}

int stun_client_quiet(struct stun_client *c, const uint8_t tid[STUN_TID_LEN], void *new_arg)
{
	for (struct stun_txn *t = c->txns; t; t = t->next) {
		if (memcmp(t->tid, tid, STUN_TID_LEN) && memcmp(t->first_tid, tid, STUN_TID_LEN))
			continue;
		unsigned rc = t->rto.rc ? t->rto.rc : 1;
		t->req.arg = new_arg;
		t->quiet = true;
		if (t->sends < rc) {
			/* the rest of the transaction timeout, with no sends */
			double left = ev_timer_remaining(c->loop, &t->timer);
			for (unsigned i = t->sends; i < rc; i++)
				left += stun_rto_delay(&t->rto, i) / 1000.0;
			ev_timer_stop(c->loop, &t->timer);
			ev_timer_set(&t->timer, left, 0.);
			ev_timer_start(c->loop, &t->timer);
			t->sends = rc;
		}
		return 0;
	}
	return -ENOENT;
}

static struct stun_txn *txn_find(struct stun_client *c, const uint8_t tid[STUN_TID_LEN])
{
	for (struct stun_txn *t = c->txns; t; t = t->next)
		if (!memcmp(t->tid, tid, STUN_TID_LEN))
			return t;
	return NULL;
}

/* ---- responses ---- */

/* 401 / 438 handling (RFC 8489 s9.2.5). Returns true if the transaction
 * was retried or finished here. */
static bool txn_auth_retry(struct stun_txn *t, const struct stun_msg *m)
{
	uint16_t code = m->error.code;
	struct stun_cred *cred = t->req.cred;
	int err;

	if (m->cls != STUN_CLASS_ERROR || (code != 401 && code != 438) || !cred)
		return false;
	if (code == STUN_ERR_UNAUTHORIZED && t->authed) {
		/* "MUST NOT perform this retry if it is not changing the
		 * USERNAME, USERHASH, REALM, or its associated password" */
		struct stun_txn_result r = { .status = STUN_TXN_AUTH_FAILED, .msg = m,
					     .code = code };
		txn_finish(t, &r);
		return true;
	}
	if (code == STUN_ERR_STALE_NONCE && !t->authed)
		return false;
	if (++t->auth_tries > AUTH_TRIES_MAX || cred_update(cred, m) < 0)
		return false;
	vlog(t->c, "<- %u: retrying with realm \"%s\" (%s%s)", code, cred->realm,
	     cred->alg == STUN_PWALG_SHA256 ? "SHA-256" : "MD5",
	     cred->userhash ? ", USERHASH" : "");
	err = txn_start(t);
	if (err < 0)
		txn_fail(t, STUN_TXN_SEND_FAILED, -err);
	return true;
}

/* s9.2.5 / s9.1.4: a response to an authenticated request must carry a
 * valid MESSAGE-INTEGRITY(-SHA256) made with our key. */
static bool integrity_ok(const struct stun_txn *t, const struct stun_msg *m)
{
	const struct stun_cred *cred = t->req.cred;

	if (t->short_keylen) /* s9.1.4: the response must carry our key's MI */
		return stun_msg_has(m, STUN_ATTR_MESSAGE_INTEGRITY) &&
		       stun_msg_verify_mi(m, t->short_key, t->short_keylen) == 0;
	if (!t->authed)
		return true;
	if (m->cls == STUN_CLASS_ERROR && (m->error.code == 401 || m->error.code == 438))
		return true;
	if (cred->mi256 && stun_msg_has(m, STUN_ATTR_MESSAGE_INTEGRITY_SHA256))
		return stun_msg_verify_mi256(m, cred->key, cred->keylen) == 0;
	if (!cred->mi256 && stun_msg_has(m, STUN_ATTR_MESSAGE_INTEGRITY))
		return stun_msg_verify_mi(m, cred->key, cred->keylen) == 0;
	return false;
}

static void txn_response(struct stun_txn *t, const struct stun_msg *m,
			 const stun_sockaddr *from)
{
	struct stun_client *c = t->c;

	if (m->method != t->req.method)
		return;
	if (!integrity_ok(t, m)) {
		/* "discarded, as if it had never been received" */
		c->stats.rx_bad_integrity++;
		t->bad_integrity = true;
		return;
	}
	c->stats.rx_responses++;
	if (txn_auth_retry(t, m))
		return;
	struct stun_txn_result r = {
		.status = m->cls == STUN_CLASS_SUCCESS ? STUN_TXN_SUCCESS : STUN_TXN_ERROR_RESP,
		.msg = m,
		.from = from,
		.code = m->cls == STUN_CLASS_ERROR ? m->error.code : 0,
	};
	vlog(c, "<- %s %s%s", stun_method_name(m->method),
	     m->cls == STUN_CLASS_SUCCESS ? "success" : "error ",
	     m->cls == STUN_CLASS_SUCCESS ? "" : stun_error_reason(m->error.code));
	txn_finish(t, &r);
}

static void client_input(struct stun_client *c, const uint8_t *buf, size_t len,
			 const stun_sockaddr *from)
{
	struct stun_msg m;
	bool is_stun = stun_demux(buf, len) == STUN_DEMUX_STUN &&
		       stun_msg_parse(&m, buf, len) == 0;

	if (is_stun && !m.classic &&
	    (m.cls == STUN_CLASS_SUCCESS || m.cls == STUN_CLASS_ERROR)) {
		struct stun_txn *t = txn_find(c, m.tid);
		if (t) {
			txn_response(t, &m, from);
			return;
		}
		c->stats.rx_unmatched++;
	}
	c->stats.rx_other++;
	if (c->other)
		c->other(c, buf, len, from, is_stun ? &m : NULL, c->other_arg);
}

/* RFC 8489 s6.2.1: "A STUN transaction over UDP is also considered failed
 * if there has been a hard ICMP error". IP_RECVERR queues them with the
 * destination the failed datagram went to. */
static bool icmp_is_hard(const struct sock_extended_err *ee)
{
	if (ee->ee_origin == SO_EE_ORIGIN_ICMP)
		return ee->ee_type == 3; /* destination unreachable */
	if (ee->ee_origin == SO_EE_ORIGIN_ICMP6)
		return ee->ee_type == 1;
	return false;
}

static void icmp_fail(struct stun_client *c, const stun_sockaddr *dest)
{
	struct stun_txn *t = c->txns, *next;

	for (; t && !c->dead; t = next) {
		next = t->next;
		if (!stun_sockaddr_equal(&t->req.dest, dest))
			continue;
		vlog(c, "%s: ICMP unreachable", stun_method_name(t->req.method));
		txn_fail(t, STUN_TXN_UNREACHABLE, ECONNREFUSED);
		next = c->txns; /* the callback may have changed the list */
	}
}

static void read_errqueue(struct stun_client *c)
{
	for (int i = 0; i < RECV_BATCH && !c->dead; i++) {
		stun_sockaddr dest;
		uint8_t control[512];
		char dummy[64];
		struct iovec iov = { dummy, sizeof(dummy) };
		struct msghdr mh = { .msg_name = &dest, .msg_namelen = sizeof(dest),
				     .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = control, .msg_controllen = sizeof(control) };
		if (recvmsg(c->fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
			return;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			bool v4 = cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR;
			bool v6 = cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR;
			if (!v4 && !v6)
				continue;
			c->stats.rx_icmp++;
			if (icmp_is_hard((const struct sock_extended_err *)CMSG_DATA(cm)))
				icmp_fail(c, &dest);
		}
	}
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct stun_client *c = w->data;

	(void)loop;
	(void)revents;
	c->depth++;
	for (int i = 0; i < RECV_BATCH && !c->dead; i++) {
		stun_sockaddr from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(c->fd, c->rbuf, sizeof(c->rbuf), MSG_DONTWAIT, &from.sa, &fl);
		if (n < 0) {
			/* woken with nothing to read: an error queue entry whose
			 * pending error a send took (stun_client_send) */
			if ((errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) || i == 0)
				read_errqueue(c);
			break;
		}
		client_input(c, c->rbuf, (size_t)n, &from);
	}
	c->depth--;
	if (c->dead && !c->depth)
		really_free(c);
}

/* ---- the client ---- */

int stun_client_adopt(struct ev_loop *loop, int fd, struct stun_client **out)
{
	struct stun_client *c = calloc(1, sizeof(*c));
	socklen_t sl = sizeof(c->local);
	int on = 1;

	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	if (getsockname(fd, &c->local.sa, &sl) < 0) {
		int err = -errno;
		close(fd);
		free(c);
		return err;
	}
	c->bound = c->local;
	if (c->local.sa.sa_family == AF_INET6)
		setsockopt(fd, SOL_IPV6, IPV6_RECVERR, &on, sizeof(on));
	else
		setsockopt(fd, SOL_IP, IP_RECVERR, &on, sizeof(on));
	c->loop = loop;
	c->rto = STUN_RTO_DEFAULT;
	rto_cache_init(&c->rtoc, c->rto.rto_ms);
	ev_io_init(&c->io, io_cb, fd, EV_READ);
	c->io.data = c;
	ev_io_start(loop, &c->io);
	*out = c;
	return 0;
}

int stun_client_open(struct ev_loop *loop, const stun_sockaddr *bind_addr,
		     struct stun_client **out)
{
	int fd = socket(stun_sockaddr_family(bind_addr), SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -errno;
	if (bind(fd, &bind_addr->sa, stun_sockaddr_len(bind_addr)) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return stun_client_adopt(loop, fd, out);
}

/* ---- over a stream (TCP/TLS) to the server ---- */

static void stream_frame(void *arg, const uint8_t *buf, size_t len)
{
	struct stun_client *c = arg;

	if (c->dead)
		return;
	c->depth++;
	client_input(c, buf, len, &c->server);
	c->depth--;
	if (c->dead && !c->depth)
		really_free(c);
}

/* The connection is gone: so is every transaction on it (and the TURN
 * allocation and registration that lived on it, for the owner to say). */
static void stream_closed(void *arg, int err, const char *why)
{
	struct stun_client *c = arg;

	if (c->dead)
		return;
	vlog(c, "server connection closed: %s", why);
	c->depth++;
	while (c->txns && !c->dead)
		txn_fail(c->txns, STUN_TXN_SEND_FAILED, -err);
	if (!c->dead && c->closed)
		c->closed(c, err, why, c->closed_arg);
	c->depth--;
	if (c->dead && !c->depth)
		really_free(c);
}

int stun_client_open_stream(struct ev_loop *loop, const stun_sockaddr *server,
			    const struct stun_stream_opts *o, struct stun_client **out,
			    char *err, size_t cap)
{
	struct stun_client *c = calloc(1, sizeof(*c));
	socklen_t sl = sizeof(c->local);
	int rc;

	if (!c) {
		snprintf(err, cap, "out of memory");
		return -ENOMEM;
	}
	c->loop = loop;
	c->server = *server;
	c->rto = STUN_RTO_DEFAULT;
	rto_cache_init(&c->rtoc, c->rto.rto_ms);
	rc = stun_stream_open(loop, server, o, stream_frame, stream_closed, c, &c->stream, err,
			      cap);
	if (rc < 0) {
		free(c);
		return rc;
	}
	c->fd = stun_stream_fd(c->stream);
	if (getsockname(c->fd, &c->local.sa, &sl) < 0)
		memset(&c->local, 0, sizeof(c->local));
	c->bound = c->local;
	*out = c;
	return 0;
}

bool stun_client_is_stream(const struct stun_client *c)
{
	return c->stream != NULL;
}

void stun_client_set_closed(struct stun_client *c, stun_closed_cb cb, void *arg)
{
	c->closed = cb;
	c->closed_arg = arg;
}

static void really_free(struct stun_client *c)
{
	if (c->stream)
		stun_stream_free(c->stream);
	else
		close(c->fd);
	free(c);
}

void stun_client_free(struct stun_client *c)
{
	if (!c || c->dead)
		return;
	ev_io_stop(c->loop, &c->io);
	c->other = NULL;
	c->dead = true;
	c->depth++;
	while (c->txns)
		txn_fail(c->txns, STUN_TXN_CANCELLED, 0);
	c->depth--;
	if (!c->depth)
		really_free(c);
}

void stun_client_set_other(struct stun_client *c, stun_other_cb cb, void *arg)
{
	c->other = cb;
	c->other_arg = arg;
}

void stun_client_set_rto(struct stun_client *c, const struct stun_rto *rto)
{
	c->rto = *rto;
	rto_cache_init(&c->rtoc, rto->rto_ms); /* a new floor: start over */
}

void stun_client_set_verbose(struct stun_client *c, int verbose)
{
	c->verbose = verbose;
}

int stun_client_fd(const struct stun_client *c)
{
	return c->fd;
}

const stun_sockaddr *stun_client_local(const struct stun_client *c)
{
	return &c->local;
}

const stun_sockaddr *stun_client_bound(const struct stun_client *c)
{
	return &c->bound;
}

void stun_client_set_local_ip(struct stun_client *c, const stun_sockaddr *ip)
{
	uint16_t port = stun_sockaddr_port(&c->bound);

	c->local = *ip;
	if (c->local.sa.sa_family == AF_INET)
		c->local.in4.sin_port = htons(port);
	else
		c->local.in6.sin6_port = htons(port);
}

struct ev_loop *stun_client_loop(const struct stun_client *c)
{
	return c->loop;
}

const struct stun_client_stats *stun_client_stats(const struct stun_client *c)
{
	return &c->stats;
}

unsigned stun_client_pending(const struct stun_client *c)
{
	return c->n_txns;
}

/* The errno values an ICMP error turns into (RFC 1122 s4.1.3.3: passed
 * to the application; Linux icmp_err_convert). */
static bool icmp_errno(int e)
{
	return e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH || e == EHOSTDOWN ||
	       e == ENOPROTOOPT || e == EOPNOTSUPP || e == EPROTO;
}

int stun_client_send(struct stun_client *c, const stun_sockaddr *dest, const void *buf,
		     size_t len)
{
	if (c->stream) {
		/* one connection: only the server is reachable through it */
		if (!stun_sockaddr_equal(dest, &c->server))
			return -EPROTOTYPE;
		return stun_stream_send(c->stream, buf, len);
	}
	for (int tries = 0; ; tries++) {
		if (sendto(c->fd, buf, len, 0, &dest->sa, stun_sockaddr_len(dest)) >= 0)
			return 0;
		/* IP_RECVERR: an ICMP error about an EARLIER datagram is also
		 * stored as the socket's pending error, which fails (and clears)
		 * the next send: this datagram was not sent. Its error queue
		 * entry is read by io_cb as usual; send again. */
		if (tries >= 2 || !icmp_errno(errno))
			return -errno;
	}
}

int stun_client_build_response(const struct stun_msg *m, uint16_t error_code,
			       stun_attrs_fn attrs, void *attrs_arg, const uint8_t *key,
			       size_t keylen, uint8_t *buf, size_t cap)
{
	struct stun_builder b;

	stun_build_init(&b, buf, cap, m->method,
			error_code ? STUN_CLASS_ERROR : STUN_CLASS_SUCCESS, m->tid);
	if (error_code)
		stun_build_error(&b, error_code, NULL);
	if (attrs)
		attrs(&b, attrs_arg);
	if (key)
		stun_build_mi(&b, key, keylen);
	stun_build_fingerprint(&b);
	return stun_build_finish(&b);
}

int stun_client_respond(struct stun_client *c, const struct stun_msg *m,
			const stun_sockaddr *to, uint16_t error_code, stun_attrs_fn attrs,
			void *attrs_arg, const uint8_t *key, size_t keylen)
{
	uint8_t buf[TXN_BUF_MAX];
	int n = stun_client_build_response(m, error_code, attrs, attrs_arg, key, keylen, buf,
					   sizeof(buf));

	if (n < 0)
		return n;
	return stun_client_send(c, to, buf, (size_t)n);
}

bool stun_client_inject(struct stun_client *c, const uint8_t *buf, size_t len,
			const stun_sockaddr *from)
{
	struct stun_msg m;
	struct stun_txn *t;

	if (c->dead || stun_demux(buf, len) != STUN_DEMUX_STUN ||
	    stun_msg_parse(&m, buf, len) != 0 || m.classic ||
	    (m.cls != STUN_CLASS_SUCCESS && m.cls != STUN_CLASS_ERROR))
		return false;
	t = txn_find(c, m.tid);
	if (!t)
		return false;
	c->depth++;
	txn_response(t, &m, from);
	c->depth--;
	if (c->dead && !c->depth)
		really_free(c);
	return true;
}

int stun_route_source(const stun_sockaddr *dest, stun_sockaddr *out)
{
	socklen_t sl = sizeof(*out);
	int fd = socket(stun_sockaddr_family(dest), SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int err = 0;

	if (fd < 0)
		return -errno;
	if (connect(fd, &dest->sa, stun_sockaddr_len(dest)) < 0 ||
	    getsockname(fd, &out->sa, &sl) < 0)
		err = -errno;
	close(fd);
	if (err)
		return err;
	if (out->sa.sa_family == AF_INET6)
		out->in6.sin6_port = 0;
	else
		out->in4.sin_port = 0;
	return 0;
}
