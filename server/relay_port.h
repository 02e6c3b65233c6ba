/* relay_port: relayed transport addresses (RFC 8656 s7.2): every relay-ip
 * times min-port..max-port, picked at random (RFC 6056, as s7.2 recommends),
 * EVEN-PORT (s18.7) and the R bit reserving port N+1 under a
 * RESERVATION-TOKEN held 30 s (s7.2, s18.10). One table per process,
 * shared by the workers (a reservation is server-wide, s7.2), locked. */
#ifndef STUND_RELAY_PORT_H
#define STUND_RELAY_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stun_msg.h"

#define RELAY_RESERVATION_HOLD 30 /* s7.2: at least 30 seconds */

enum relay_port_flags {
	RELAY_PORT_EVEN = 1,         /* EVEN-PORT */
	RELAY_PORT_RESERVE_NEXT = 2, /* EVEN-PORT with R = 1 */
};

struct relay_ports;

/* ips: the relay-ip addresses (ports ignored), copied. max_tokens: how
 * many reservations may be outstanding. seed 0 takes one from getrandom. */
struct relay_ports *relay_ports_new(const stun_sockaddr *ips, size_t n_ips,
				    uint16_t min_port, uint16_t max_port,
				    uint32_t max_tokens, uint64_t seed);
void relay_ports_free(struct relay_ports *rp);

/* Is there a relay-ip of this family (AF_INET / AF_INET6)? */
bool relay_ports_has_family(const struct relay_ports *rp, int family);

/* Take a free relayed address of family. With RELAY_PORT_RESERVE_NEXT the
 * port is even, N+1 is reserved too and *token receives its token.
 * -EAFNOSUPPORT: no relay-ip of that family (440); -ENOSPC: nothing free
 * (508); -ENOBUFS: no reservation slot left (508). */
int relay_ports_get(struct relay_ports *rp, int family, unsigned flags, double now,
		    stun_sockaddr *out, uint64_t *token);
/* Take the address reserved under token. -ENOENT when unknown or expired
 * (s7.2 item 5: 508). */
int relay_ports_redeem(struct relay_ports *rp, uint64_t token, double now,
		       stun_sockaddr *out);
/* Give an address back (its port becomes free). */
void relay_ports_put(struct relay_ports *rp, const stun_sockaddr *a);
/* Free the ports of reservations older than RELAY_RESERVATION_HOLD. */
void relay_ports_expire(struct relay_ports *rp, double now);
uint32_t relay_ports_in_use(struct relay_ports *rp);

#endif
