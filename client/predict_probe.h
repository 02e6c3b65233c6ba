/* predict_probe: prediction on the session's own socket. After the
 * Binding to the server, Bindings to the server's OTHER-ADDRESS (RFC 5780
 * s7.2; a different IP and port) and to its IP on the other port show
 * whether the NAT gives a new port per destination and how it picks it
 * (predict_classify); when sequential, the next ports become predicted
 * candidates of the ICE session, and optionally low-TTL datagrams to the
 * peer's addresses open the local NAT's mappings towards it before its
 * checks arrive. */
#ifndef NATCLIENT_PREDICT_PROBE_H
#define NATCLIENT_PREDICT_PROBE_H

#include <stdbool.h>
#include <stdint.h>

#include "birthday.h"
#include "ice.h"
#include "predict.h"
#include "stun_client.h"

struct predict_probe {
	enum predict_alloc alloc;
	int delta;
	uint16_t first, last;      /* mapped ports: towards the server, the last probe */
	uint16_t ports[3];         /* all: server, OTHER-ADDRESS, server IP + other port */
	unsigned n_ports;
	bool done;
	unsigned n_pred;           /* predicted candidates added */
	struct stun_client *sc;    /* borrowed, from predict_probe_run() */
	struct birthday *bday;     /* running or done; NULL: none */
	bool bday_easy, bday_won;  /* our role; hard side: a probe got through */
	bool stale;                /* checks made new mappings since the probe */
	struct stun_client *fresh; /* predict_probe_refresh() in flight */
	void (*fresh_cb)(struct predict_probe *p, void *arg);
	void *fresh_arg;
};

/* Bind from sc to other (the server's OTHER-ADDRESS), then to the
 * server's IP on other's port, waiting (on sc's loop) for each answer or
 * about 1 s; first is the mapped port the server itself saw. Sets
 * p->alloc from the mapped ports (predict_classify: a constant step over
 * three, or two when the mapping depends on the address only). */
int predict_probe_run(struct predict_probe *p, struct stun_client *sc,
		      const stun_sockaddr *server, const stun_sockaddr *other, uint16_t first);
/* Sequential and stale (an ICE session's checks and punches made new
 * mappings since the probe, so the NAT's next port moved on): a Binding
 * from a new socket to server shows the port the NAT gave last, which
 * becomes p->last; the next window follows it. This assumes a NAT that
 * counts across its internal endpoints (one counter, as the lab's and most
 * sequential NATs do). cb runs when done (also on failure: p->last stays).
 * Returns 1 if started, 0 if nothing to do (cb does not run), or < 0. */
int predict_probe_refresh(struct predict_probe *p, const stun_sockaddr *server,
			  void (*cb)(struct predict_probe *p, void *arg), void *arg);
/* Add the window of predicted candidates (sequential), or the birthday
 * flag candidate (random). Returns how many were added. */
unsigned predict_probe_add(struct predict_probe *p, struct ice *ice, const stun_sockaddr *srflx,
			   const stun_sockaddr *server, const struct predict_opts *o);
/* Both sides sequential (our probe and the peer's predicted candidates),
 * opts->cross: the crossing punch, to be sent before any check and before
 * predict_probe_punch(). Our predicted candidates are the ports our NAT
 * gives our next new destinations, in order, as long as nothing else makes
 * a mapping first (the peer's likewise); so one datagram from fd to each of
 * the peer's predicted candidates, in the peer's order, makes our i-th
 * guess the mapping towards the peer's i-th guess, while the peer's i-th
 * send makes its i-th guess the mapping towards ours: every pair crosses,
 * and the checks between predicted candidates ride on mappings that exist
 * on both NATs (predict_cross_window). A datagram that reaches the far NAT
 * before its mapping is dropped there; its retransmission, the check, is
 * not. With opts->ttl the datagrams carry that TTL. Fills to[] and from[]
 * (the peer's ports sent to, ours they should leave from) and returns the
 * count, 0 when not both sequential. */
unsigned predict_probe_cross(const struct predict_probe *p, struct ice *ice, int fd,
			     const struct predict_opts *o, uint16_t *to, uint16_t *from);
/* opts->ttl > 0 and sequential: a low-TTL datagram from fd to each of the
 * peer's non-relayed candidates (ice's remote list); facing a random-port
 * peer with a stable mapping: one datagram to its IP. Returns the count. */
unsigned predict_probe_punch(const struct predict_probe *p, struct ice *ice, int fd,
			     const struct predict_opts *o);
/* Once the peer's candidates are known: the birthday approach when one
 * side is random and the other's mapping is endpoint-independent
 * (predict_choose); hard side: cb gets the socket a probe reached. Both
 * random: nothing (the relay). Returns 1 if started, else 0. */
int predict_probe_birthday(struct predict_probe *p, struct ice *ice,
			   const struct predict_opts *o, birthday_cb cb, void *arg);
/* Stop the birthday (connected, or the session ends). */
void predict_probe_stop(struct predict_probe *p);
/* Stop all: the birthday and a refresh in flight (its cb does not run). */
void predict_probe_free(struct predict_probe *p);

/* Did the selected pair come from prediction? Its remote candidate is a
 * predicted one, or our mapped address on it (XOR-MAPPED-ADDRESS of the
 * check) is one of our predicted candidates. */
bool predict_probe_selected(const struct predict_probe *p, struct ice *ice);

#endif
