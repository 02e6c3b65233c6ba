/* turn_dispatch: where the TURN relay (turn.h) plugs into the server core:
 * the process-wide pieces it needs (relay ports and quotas, the
 * authentication context, the peer filter), the worker's turn_service, the
 * method rows of dispatch.c, ChannelData from the listeners, and stream
 * connections closing. */
#ifndef STUND_TURN_DISPATCH_H
#define STUND_TURN_DISPATCH_H

#include "dispatch.h"
#include "listener.h"
#include "worker.h"

/* Main thread, before the workers start / after they stopped. */
/* Log (warn) when TURN and rendezvous are refused for want of credentials,
 * or served without them (no-auth). At start and on reload. */
void turn_dispatch_auth_warning(const struct config *cfg);
int turn_dispatch_setup(struct stund_shared *sh, const struct config *cfg, char *err,
			size_t errlen);
void turn_dispatch_teardown(struct stund_shared *sh);

/* Worker: after its loop exists / before it is destroyed. */
int turn_dispatch_worker_start(struct worker *w);
void turn_dispatch_worker_free(struct worker *w);
/* Worker: it switched to a new config (SIGHUP). */
void turn_dispatch_worker_reload(struct worker *w);

/* Method rows (dispatch.c). */
void turn_dispatch_request(struct worker *w, const struct stun_msg *m,
			   const struct stun_in *in, struct stun_out *out);
void turn_dispatch_send(struct worker *w, const struct stun_msg *m, const struct stun_in *in);

/* ChannelData from a listener (the first byte said 0x40-0x4F). */
void turn_dispatch_channel_data(struct worker *w, const struct stun_in *in);

/* With rfc5766-channels, a datagram starting 0x50-0x7F is ChannelData of
 * an RFC 5766 channel: handled (true) or not ours (false). */
bool turn_dispatch_legacy_channel(struct worker *w, const struct stun_in *in);

/* The end of a UDP listener's receive batch: relay what it queued. */
void turn_dispatch_flush(struct worker *w);

/* A TLS or DTLS session is closing (in: its peer, laddr, tp, session):
 * its allocation goes too. */
void turn_dispatch_sess_closed(struct worker *w, const struct stun_in *in);

/* A stream connection is closing: its allocation goes too. */
void turn_dispatch_conn_closed(struct stream_conn *c);

/* After the current frame: move the connection to worker c->handoff_to - 1
 * with that frame (a ConnectionBind for a CONNECTION-ID held there). */
void turn_dispatch_handoff(struct stream_conn *c, const uint8_t *frame, size_t len);

#endif
