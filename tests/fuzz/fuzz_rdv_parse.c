/* libFuzzer target for proto/rdv_proto: when a message parses as STUN, its
 * rendezvous attributes are decoded; what decodes is built again and must
 * decode to the same values (every string stays valid, every candidate
 * keeps its type, address, priority and foundation). Violations abort. */
#include "rdv_proto.h"
#include "stun_msg.h"

#include <stdlib.h>
#include <string.h>

static void check(bool ok)
{
	if (!ok)
		abort();
}

static bool same_cand(const struct rdv_candidate *a, const struct rdv_candidate *b)
{
	return a->type == b->type && a->transport == b->transport &&
	       a->component == b->component && a->priority == b->priority &&
	       stun_sockaddr_equal(&a->addr, &b->addr) && !strcmp(a->foundation, b->foundation);
}

static void roundtrip(const struct rdv_msg *r, const uint8_t tid[STUN_TID_LEN])
{
	static uint8_t buf[8192];
	static struct rdv_msg r2;
	struct stun_builder b;
	struct stun_msg m;
	int n;

	stun_build_init(&b, buf, sizeof(buf), RDV_METHOD_CONNECT, STUN_CLASS_REQUEST, tid);
	if (r->has_id)
		rdv_build_id(&b, r->id);
	if (r->has_offer_id)
		rdv_build_offer_id(&b, r->offer_id);
	if (r->has_from)
		rdv_build_from(&b, r->from, strlen(r->from));
	rdv_build_session(&b, r);
	stun_build_fingerprint(&b);
	n = stun_build_finish(&b);
	check(n > 0);
	check(stun_msg_parse(&m, buf, (size_t)n) == 0);
	check(rdv_msg_decode(&r2, &m) == 0);
	check(r2.has_id == r->has_id && !strcmp(r2.id, r->id));
	check(r2.n_cand == r->n_cand);
	for (unsigned i = 0; i < r->n_cand; i++)
		check(same_cand(&r->cand[i], &r2.cand[i]));
	check(r2.has_ufrag == r->has_ufrag && !strcmp(r2.ufrag, r->ufrag));
	check(r2.has_pwd == r->has_pwd && !strcmp(r2.pwd, r->pwd));
	check(r2.has_tie_breaker == r->has_tie_breaker && r2.tie_breaker == r->tie_breaker);
	check(r2.has_offer_id == r->has_offer_id &&
	      !memcmp(r2.offer_id, r->offer_id, RDV_OFFER_ID_LEN));
	check(r2.has_from == r->has_from && !strcmp(r2.from, r->from));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rdv_msg r;
	struct stun_msg m;

	if (stun_msg_parse(&m, data, size) != 0)
		return 0;
	if (rdv_msg_decode(&r, &m) != 0)
		return 0;
	check(!r.has_id || rdv_id_valid(r.id, strlen(r.id)));
	check(r.n_cand <= RDV_MAX_CANDIDATES);
	roundtrip(&r, m.tid);
	return 0;
}
