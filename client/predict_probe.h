/* predict_probe: prediction on the session's own socket. After the
 * Binding to the server, a second Binding to the server's OTHER-ADDRESS
 * (RFC 5780 s7.2; a different IP and port) shows whether the NAT gives a
 * new port per destination and how it picks it (predict_classify); when
 * sequential, the next ports become predicted candidates of the ICE
 * session, and optionally low-TTL datagrams to the peer's addresses open
 * the local NAT's mappings towards it before its checks arrive. */
#ifndef NATCLIENT_PREDICT_PROBE_H
#define NATCLIENT_PREDICT_PROBE_H

#include <stdbool.h>
#include <stdint.h>

#include "ice.h"
#include "predict.h"
#include "stun_client.h"

struct predict_probe {
	enum predict_alloc alloc;
	int delta;
	uint16_t first, last;      /* mapped ports: towards the server, its other address */
	bool done;
	unsigned n_pred;           /* predicted candidates added */
	struct stun_client *sc;    /* borrowed, from predict_probe_run() */
};

/* Bind to other from sc and wait (on sc's loop) for the answer or about
 * 1 s; first is the mapped port the server itself saw. Sets p->alloc. */
int predict_probe_run(struct predict_probe *p, struct stun_client *sc,
		      const stun_sockaddr *other, uint16_t first);
/* Add the window of predicted candidates (sequential only). Returns how
 * many were added. */
unsigned predict_probe_add(struct predict_probe *p, struct ice *ice, const stun_sockaddr *srflx,
			   const stun_sockaddr *server, const struct predict_opts *o);
/* opts->ttl > 0 and sequential: a low-TTL datagram from fd to each of the
 * peer's non-relayed candidates (ice's remote list). Returns the count. */
unsigned predict_probe_punch(const struct predict_probe *p, struct ice *ice, int fd,
			     const struct predict_opts *o);
/* Did the selected pair come from prediction? Its remote candidate is a
 * predicted one, or our mapped address on it (XOR-MAPPED-ADDRESS of the
 * check) is one of our predicted candidates. */
bool predict_probe_selected(struct ice *ice);

#endif
