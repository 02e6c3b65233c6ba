/* birthday: a random-port symmetric NAT facing an endpoint-independent
 * mapping (RFC 4787 s4.1). The hard side opens many sockets, each sending
 * to the easy side's mapped address: each gets its own random port on the
 * hard NAT, which lets answers from that address in. The easy side sends
 * probes to random ports of the hard side's public IP; a probe that hits
 * one of those ports reaches its socket, which then carries the session's
 * checks and data (stun_client_adopt, ice_move_socket). With k sockets among N ports, each probe
 * hits with chance k/N: 256 sockets and 2000 probes miss about once in
 * 3000 tries. Bounded in sockets, probes per second, probes and time
 * (struct predict_opts). */
#ifndef NATCLIENT_BIRTHDAY_H
#define NATCLIENT_BIRTHDAY_H

#include <ev.h>

#include "predict.h"
#include "stun_client.h"

struct birthday;
/* The hard side's socket that a probe reached (owned by the callee now)
 * and where the probe came from, or fd -1 (from NULL) when the time ran
 * out. */
typedef void (*birthday_cb)(struct birthday *b, int fd, const stun_sockaddr *from, void *arg);

/* Hard side: o->sockets sockets bound to local's IP, each sending to peer
 * (the easy side's mapped address), for o->ms at most. */
int birthday_hard_start(struct ev_loop *loop, const stun_sockaddr *local,
			const stun_sockaddr *peer, const struct predict_opts *o, birthday_cb cb,
			void *arg, struct birthday **out);
/* Easy side: probes from sc to random ports of peer_ip's address, at most
 * o->pps per second, o->packets in all, for o->ms. */
int birthday_easy_start(struct stun_client *sc, const stun_sockaddr *peer_ip,
			const struct predict_opts *o, struct birthday **out);
void birthday_free(struct birthday *b);
unsigned birthday_sent(const struct birthday *b);

#endif
