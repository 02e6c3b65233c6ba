/* birthday: the birthday approach (see birthday.h). */
#include "birthday.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/socket.h>

#define TICK_S 0.01

static const uint8_t marker[4] = { 0xff, 'n', 'k', 'b' }; /* not STUN, not data */

struct birthday {
	struct ev_loop *loop;
	struct stun_client *sc;    /* easy side: borrowed */
	stun_sockaddr peer;
	struct predict_budget budget;
	struct predict_rand rnd;
	birthday_cb cb;
	void *arg;
	unsigned n;                /* hard side: sockets */
	int *fds;
	ev_io *io;
	ev_timer tick, limit;
};

static uint64_t now_ms(struct ev_loop *loop)
{
	return (uint64_t)(ev_now(loop) * 1000.0);
}

static void close_all(struct birthday *b)
{
	for (unsigned i = 0; i < b->n; i++) {
		ev_io_stop(b->loop, &b->io[i]);
		if (b->fds[i] >= 0)
			close(b->fds[i]);
		b->fds[i] = -1;
	}
	ev_timer_stop(b->loop, &b->tick);
	ev_timer_stop(b->loop, &b->limit);
}

static bool same_ip(const stun_sockaddr *a, const stun_sockaddr *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET)
		return a->in4.sin_addr.s_addr == b->in4.sin_addr.s_addr;
	return !memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, sizeof(a->in6.sin6_addr));
}

static void hard_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct birthday *b = w->data;
	unsigned i = (unsigned)(w - b->io);
	uint8_t buf[64];
	stun_sockaddr from;
	socklen_t fl = sizeof(from);
	int fd = b->fds[i];

	(void)loop;
	(void)revents;
	if (recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, &from.sa, &fl) < 0 ||
	    !same_ip(&from, &b->peer))
		return;
	b->fds[i] = -1; /* a probe got through: this socket is the callee's */
	ev_io_stop(b->loop, w);
	close_all(b);
	b->cb(b, fd, &from, b->arg);
}

static void limit_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct birthday *b = w->data;

	(void)loop;
	(void)revents;
	close_all(b);
	if (b->cb)
		b->cb(b, -1, NULL, b->arg);
}

static int open_one(const stun_sockaddr *local, const stun_sockaddr *peer)
{
	stun_sockaddr a = *local;
	int fd = socket(stun_sockaddr_family(&a), SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int on = 1;

	if (fd < 0)
		return -errno;
	if (a.sa.sa_family == AF_INET)
		a.in4.sin_port = 0;
	else
		a.in6.sin6_port = 0;
	if (bind(fd, &a.sa, stun_sockaddr_len(&a)) < 0 ||
	    sendto(fd, marker, sizeof(marker), 0, &peer->sa, stun_sockaddr_len(peer)) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	if (a.sa.sa_family == AF_INET) /* as stun_client's own socket */
		setsockopt(fd, SOL_IP, IP_RECVERR, &on, sizeof(on));
	return fd;
}

static struct birthday *alloc(struct ev_loop *loop, const stun_sockaddr *peer,
			      const struct predict_opts *o, unsigned n)
{
	struct birthday *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->fds = calloc(n ? n : 1, sizeof(*b->fds));
	b->io = calloc(n ? n : 1, sizeof(*b->io));
	if (!b->fds || !b->io) {
		free(b->fds);
		free(b->io);
		free(b);
		return NULL;
	}
	b->loop = loop;
	b->peer = *peer;
	ev_timer_init(&b->limit, limit_cb, o->ms / 1000.0, 0.);
	b->limit.data = b;
	ev_timer_start(loop, &b->limit);
	return b;
}

int birthday_hard_start(struct ev_loop *loop, const stun_sockaddr *local,
			const stun_sockaddr *peer, const struct predict_opts *o, birthday_cb cb,
			void *arg, struct birthday **out)
{
	struct birthday *b = alloc(loop, peer, o, o->sockets);

	if (!b)
		return -ENOMEM;
	b->cb = cb;
	b->arg = arg;
	for (; b->n < o->sockets; b->n++) {
		int fd = open_one(local, peer);
		if (fd < 0)
			break; /* out of descriptors: go with what we have */
		b->fds[b->n] = fd;
		ev_io_init(&b->io[b->n], hard_io, fd, EV_READ);
		b->io[b->n].data = b;
		ev_io_start(loop, &b->io[b->n]);
	}
	*out = b;
	return b->n ? 0 : -EMFILE;
}

static void easy_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct birthday *b = w->data;
	unsigned n = predict_budget_take(&b->budget, now_ms(loop));

	(void)revents;
	for (unsigned i = 0; i < n; i++) {
		stun_sockaddr to = b->peer;
		uint16_t port = predict_rand_port(&b->rnd);
		if (!port)
			break;
		stun_sockaddr_set_port(&to, port);
		stun_client_send(b->sc, &to, marker, sizeof(marker));
	}
	if (predict_budget_done(&b->budget, now_ms(loop)))
		close_all(b);
}

int birthday_easy_start(struct stun_client *sc, const stun_sockaddr *peer_ip,
			const struct predict_opts *o, struct birthday **out)
{
	struct ev_loop *loop = stun_client_loop(sc);
	struct birthday *b = alloc(loop, peer_ip, o, 0);
	uint64_t seed = 0;

	if (!b)
		return -ENOMEM;
	b->sc = sc;
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (uint64_t)now_ms(loop) ^ (uint64_t)getpid();
	predict_rand_init(&b->rnd, seed);
	predict_budget_init(&b->budget, o, now_ms(loop));
	ev_timer_init(&b->tick, easy_tick, 0., TICK_S);
	b->tick.data = b;
	ev_timer_start(loop, &b->tick);
	*out = b;
	return 0;
}

unsigned birthday_sent(const struct birthday *b)
{
	return b ? (b->sc ? b->budget.sent : b->n) : 0;
}

void birthday_free(struct birthday *b)
{
	if (!b)
		return;
	close_all(b);
	free(b->fds);
	free(b->io);
	free(b);
}
