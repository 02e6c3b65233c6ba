/* tcp_handoff: moves a plain TCP connection from one worker to another.
 *
 * Workers own their connections and allocations with no locks; the kernel
 * picks the worker of a new TCP connection. An RFC 6062 data connection
 * must reach the worker that holds its CONNECTION-ID (RFC 6062 s5.4), so
 * the worker that accepted it posts the fd and the ConnectionBind frame
 * to the owner's mailbox (a locked list and an ev_async), and the owner
 * adopts the connection and handles the frame as if it had arrived there. */
#ifndef STUND_TCP_HANDOFF_H
#define STUND_TCP_HANDOFF_H

#include <stddef.h>
#include <stdint.h>

#include "stun_msg.h"

struct stund_shared;
struct worker;

/* One mailbox per worker, before the workers start. */
int tcp_handoff_setup(struct stund_shared *sh);
void tcp_handoff_teardown(struct stund_shared *sh);
/* In each worker's loop (start) and when it is freed: afterwards mail to
 * it is refused, and what was still queued is closed. */
int tcp_handoff_worker_start(struct worker *w);
void tcp_handoff_worker_stop(struct worker *w);

/* Give fd (owned from now on) to worker `to`, with the frame to handle
 * first. 0, or a negative errno (fd closed). */
int tcp_handoff_post(struct stund_shared *sh, int to, int fd, int laddr,
		     const stun_sockaddr *peer, const uint8_t *frame, size_t len);

#endif
