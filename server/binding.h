/* binding: the Binding method (RFC 8489 s3, RFC 3489 classic clients) with
 * RFC 5780 NAT behaviour discovery: OTHER-ADDRESS, RESPONSE-ORIGIN,
 * CHANGE-REQUEST (sending from the right socket), RESPONSE-PORT, PADDING,
 * and the amplification guards that go with them. */
#ifndef STUND_BINDING_H
#define STUND_BINDING_H

#include "dispatch.h"

/* Classic RFC 3489 attributes (RFC 3489 s11.2), answered to classic clients. */
#define STUN_ATTR_SOURCE_ADDRESS 0x0004
#define STUN_ATTR_CHANGED_ADDRESS 0x0005

void binding_request(struct worker *w, const struct stun_msg *m, const struct stun_in *in,
		     struct stun_out *out);
/* RFC 8489 s3: a Binding indication keeps a NAT binding alive; no answer. */
void binding_indication(struct worker *w, const struct stun_msg *m, const struct stun_in *in);

#endif
