/* turn_client: one TURN allocation (a UDP relay, RFC 8656) reached over
 * UDP, or over TCP/TLS when its stun_client is a stream (s3.1): Allocate with
 * long-term credentials, Refresh before the lifetime runs out,
 * CreatePermission and ChannelBind (kept fresh by timers), data to peers
 * as Send indications or ChannelData, data from peers out of Data
 * indications and ChannelData. It rides on a stun_client (the socket is
 * shared, e.g. with the ICE agent's checks); the owner passes the
 * datagrams its stun_client does not match to turn_client_input(). */
#ifndef NATCLIENT_TURN_CLIENT_H
#define NATCLIENT_TURN_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stun_client.h"

/* Permissions (one per peer IP) and channels (one per peer transport
 * address) held at once, plus released channels waiting out RFC 8656 s12's
 * 5 minutes; beyond it a permission or channel is refused (-ENOSPC; data
 * to a peer without a channel goes as Send indications). */
#define TURN_MAX_PEERS 128

struct turn_client;

/* status: 0 on success; > 0 a STUN error code from the server; < 0 a
 * negative errno (-ETIMEDOUT no answer, -EACCES wrong credentials, -EPROTO
 * a malformed answer). */
typedef void (*turn_done_cb)(struct turn_client *t, int status, void *arg);
/* via_channel: it came as ChannelData, else as a Data indication. */
typedef void (*turn_data_cb)(struct turn_client *t, const stun_sockaddr *peer,
			     const uint8_t *data, size_t len, bool via_channel, void *arg);

struct turn_client_cbs {
	turn_done_cb allocated;   /* the Allocate finished (status) */
	turn_data_cb data;        /* data from a peer */
	turn_done_cb lost;        /* a refresh failed: the allocation is gone */
	void *arg;
};

struct turn_client_stats {
	uint64_t tx_send_ind, tx_chandata, rx_data_ind, rx_chandata;
	uint64_t refreshes, perm_refreshes, chan_refreshes, rx_dropped;
};

/* sc and cred are borrowed and must outlive the turn_client. */
int turn_client_new(struct stun_client *sc, const stun_sockaddr *server,
		    struct stun_cred *cred, const struct turn_client_cbs *cbs,
		    struct turn_client **out);
/* Deallocates (Refresh with LIFETIME 0, best effort) and frees. */
void turn_client_free(struct turn_client *t);

/* Refresh the allocation, permissions and channels every `seconds`
 * instead of shortly before they expire (diagnostics and tests); 0: the
 * normal schedule. */
void turn_client_set_refresh(struct turn_client *t, double seconds);

/* Allocate a UDP relay (REQUESTED-TRANSPORT 17); lifetime 0: the server's
 * default. cbs->allocated reports the outcome. */
int turn_client_allocate(struct turn_client *t, uint32_t lifetime_s);
/* The relayed address family to ask for (AF_INET6: REQUESTED-ADDRESS-FAMILY
 * IPv6; AF_INET, the default: none, the server gives IPv4). */
void turn_client_set_family(struct turn_client *t, int family);
bool turn_client_is_allocated(const struct turn_client *t);
const stun_sockaddr *turn_client_relayed(const struct turn_client *t);
const stun_sockaddr *turn_client_mapped(const struct turn_client *t);
uint32_t turn_client_lifetime(const struct turn_client *t);
const stun_sockaddr *turn_client_server(const struct turn_client *t);

/* Hold a permission for peer's IP (RFC 8656 s9: the port does not count),
 * refreshed every 4 minutes while someone holds it. Several users (e.g.
 * the ICE sessions of one listener sharing the allocation) share it: each
 * call takes a reference that turn_client_release() gives back. Returns 0
 * (a CreatePermission went out; done, which may be NULL, runs with its
 * outcome), 1 (held already: a reference taken, done does not run) or < 0
 * (no reference). */
int turn_client_permit(struct turn_client *t, const stun_sockaddr *peer, turn_done_cb done,
		       void *arg);
/* Hold a channel for peer's transport address (s12), refreshed every 4
 * minutes while held; the ChannelBind also installs the permission. Each
 * peer address gets its own number, never reused for another address
 * within 5 minutes of the old binding's expiry. Until the server
 * confirms, data goes as Send indications. Returns as turn_client_permit. */
int turn_client_bind_channel(struct turn_client *t, const stun_sockaddr *peer,
			     turn_done_cb done, void *arg);
/* Give back one reference taken by turn_client_permit (channel false) or
 * turn_client_bind_channel (true). The last one stops the refreshes: the
 * server lets it expire (neither can be deleted, s9, s12); the others'
 * permissions and channels on the allocation are untouched. */
void turn_client_release(struct turn_client *t, const stun_sockaddr *peer, bool channel);
/* The channel bound to peer (held and confirmed), 0 if none (yet). */
uint16_t turn_client_channel(const struct turn_client *t, const stun_sockaddr *peer);
/* How many permissions (channel false) or channels are held now. */
unsigned turn_client_held(const struct turn_client *t, bool channel);

/* Send data to peer through the relay: ChannelData when a channel is bound,
 * else a Send indication (s10.1). */
int turn_client_send(struct turn_client *t, const stun_sockaddr *peer, const void *data,
		     size_t len);

/* Offer a datagram that arrived on the shared socket from `from`. Returns
 * true if it was TURN traffic from our server (consumed). */
bool turn_client_input(struct turn_client *t, const uint8_t *buf, size_t len,
		       const stun_sockaddr *from, const struct stun_msg *m);

const struct turn_client_stats *turn_client_stats(const struct turn_client *t);
/* Text for a status given to a callback. */
const char *turn_client_strerror(int status);

#endif
