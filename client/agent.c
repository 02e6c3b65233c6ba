/* agent: ICE check list logic (see agent.h). */
#include "agent.h"

#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint8_t ice_type_pref(enum ice_cand_type t)
{
	switch (t) {
	case ICE_CAND_HOST: return 126;
	case ICE_CAND_PRFLX: return 110;
	case ICE_CAND_SRFLX: return 100;
	case ICE_CAND_PREDICTED: return 90;
	case ICE_CAND_RELAY: return 0;
	}
	return 0;
}

const char *ice_cand_type_str(enum ice_cand_type t)
{
	switch (t) {
	case ICE_CAND_HOST: return "host";
	case ICE_CAND_SRFLX: return "srflx";
	case ICE_CAND_PRFLX: return "prflx";
	case ICE_CAND_RELAY: return "relay";
	case ICE_CAND_PREDICTED: return "predicted";
	}
	return "?";
}

const char *ice_pair_state_str(enum ice_pair_state s)
{
	switch (s) {
	case ICE_PAIR_FROZEN: return "frozen";
	case ICE_PAIR_WAITING: return "waiting";
	case ICE_PAIR_IN_PROGRESS: return "in-progress";
	case ICE_PAIR_SUCCEEDED: return "succeeded";
	case ICE_PAIR_FAILED: return "failed";
	}
	return "?";
}

uint32_t ice_priority(enum ice_cand_type t, uint16_t local_pref, uint8_t component)
{
	/* s5.1.2.1; component IDs are 1..256, stored here as 1..255 */
	unsigned comp = component ? component : 1;

	return ((uint32_t)ice_type_pref(t) << 24) + ((uint32_t)local_pref << 8) + (256 - comp);
}

uint64_t ice_pair_priority(uint32_t g, uint32_t d)
{
	uint64_t lo = g < d ? g : d, hi = g < d ? d : g;

	return (lo << 32) + 2 * hi + (g > d ? 1 : 0); /* s6.1.2.3 */
}

/* FNV-1a over the IP bytes of an address (ports do not count, s5.1.1.3). */
static uint32_t fnv_ip(uint32_t h, const stun_sockaddr *a)
{
	const uint8_t *p = NULL;
	size_t n = 0;

	if (a->sa.sa_family == AF_INET) {
		p = (const uint8_t *)&a->in4.sin_addr;
		n = 4;
	} else if (a->sa.sa_family == AF_INET6) {
		p = (const uint8_t *)&a->in6.sin6_addr;
		n = 16;
	}
	h = (h ^ (uint32_t)n) * 16777619u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

void ice_foundation(const struct ice_cand *c, char out[ICE_FOUNDATION_MAX])
{
	/* type, base IP, server IP (reflexive and relayed), transport (UDP) */
	uint32_t h = 2166136261u;
	bool via_server = c->type == ICE_CAND_SRFLX || c->type == ICE_CAND_RELAY ||
			  c->type == ICE_CAND_PREDICTED;

	h = (h ^ (uint32_t)c->type) * 16777619u;
	h = fnv_ip(h, &c->base);
	if (via_server)
		h = fnv_ip(h, &c->server);
	h = (h ^ 17u) * 16777619u;
	snprintf(out, ICE_FOUNDATION_MAX, "%c%08x", ice_cand_type_str(c->type)[0], h);
}

void ice_cand_finish(struct ice_cand *c, uint16_t local_pref)
{
	if (!c->component)
		c->component = 1;
	c->priority = ice_priority(c->type, local_pref, c->component);
	ice_foundation(c, c->foundation);
}

unsigned ice_cands_eliminate_redundant(struct ice_cand *c, unsigned n)
{
	unsigned out = 0;

	for (unsigned i = 0; i < n; i++) {
		bool drop = false;
		for (unsigned j = 0; j < n && !drop; j++) {
			if (j == i || !stun_sockaddr_equal(&c[i].addr, &c[j].addr) ||
			    !stun_sockaddr_equal(&c[i].base, &c[j].base))
				continue;
			/* keep the higher priority; of equals, the first */
			drop = c[j].priority > c[i].priority ||
			       (c[j].priority == c[i].priority && j < i);
		}
		if (!drop)
			c[out++] = c[i];
	}
	return out;
}

static bool addr_is_loopback(const struct sockaddr *a)
{
	if (a->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
	return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

bool ice_host_addr_usable(const struct sockaddr *a, unsigned if_flags, int family,
			  bool server_loopback)
{
	if (!a || a->sa_family != family || !(if_flags & IFF_UP))
		return false;
	if ((if_flags & IFF_LOOPBACK) || addr_is_loopback(a))
		return server_loopback;
	if (server_loopback)
		return false; /* a server on loopback: a peer on this host only */
	if (family == AF_INET) {
		uint32_t v = ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr);
		/* unspecified, link-local 169.254/16 (RFC 3927), multicast */
		return v != 0 && (v >> 16) != 0xA9FE && (v >> 28) != 0xE;
	}
	if (family != AF_INET6)
		return false;
	const struct in6_addr *a6 = &((const struct sockaddr_in6 *)a)->sin6_addr;
	/* s5.1.1.1: link-local ones need a scope the peer cannot use */
	return !IN6_IS_ADDR_UNSPECIFIED(a6) && !IN6_IS_ADDR_LINKLOCAL(a6) &&
	       !IN6_IS_ADDR_MULTICAST(a6) && !IN6_IS_ADDR_V4MAPPED(a6);
}

/* ---- forming the check list (s6.1.2) ---- */

static bool is_reflexive(enum ice_cand_type t)
{
	return t == ICE_CAND_SRFLX || t == ICE_CAND_PRFLX || t == ICE_CAND_PREDICTED;
}

static bool pairable(const struct ice_cand *l, const struct ice_cand *r)
{
	/* s6.1.2.2: same component, same address family; IPv6 link-local
	 * only with link-local */
	if (l->component != r->component || l->addr.sa.sa_family != r->addr.sa.sa_family)
		return false;
	if (l->addr.sa.sa_family == AF_INET6 &&
	    IN6_IS_ADDR_LINKLOCAL(&l->addr.in6.sin6_addr) !=
	    IN6_IS_ADDR_LINKLOCAL(&r->addr.in6.sin6_addr))
		return false;
	return true;
}

/* s6.1.2.4: checks go from a reflexive candidate's base: use the local
 * candidate whose address is that base when there is one. */
static unsigned sending_local(const struct ice_checklist *cl, unsigned i)
{
	if (!is_reflexive(cl->local[i].type))
		return i;
	for (unsigned j = 0; j < cl->n_local; j++)
		if (cl->local[j].type == ICE_CAND_HOST &&
		    stun_sockaddr_equal(&cl->local[j].addr, &cl->local[i].base))
			return j;
	return i;
}

static uint64_t pair_prio(const struct ice_checklist *cl, const struct ice_pair *p);

static int pair_cmp(const void *a, const void *b)
{
	const struct ice_pair *x = a, *y = b;

	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	return (int)x->local - (int)y->local;
}

static void pair_make(struct ice_checklist *cl, unsigned l, unsigned r)
{
	struct ice_pair *p = &cl->pairs[cl->n_pairs++];
	const struct ice_cand *lc = &cl->local[l], *rc = &cl->remote[r];

	memset(p, 0, sizeof(*p));
	p->local = (uint8_t)l;
	p->remote = (uint8_t)r;
	/* G: the controlling agent's candidate, D: the controlled one's */
	p->priority = pair_prio(cl, p);
	p->state = ICE_PAIR_FROZEN;
	size_t ll = strnlen(lc->foundation, ICE_FOUNDATION_MAX - 1);
	size_t rl = strnlen(rc->foundation, ICE_FOUNDATION_MAX - 1);
	memcpy(p->foundation, lc->foundation, ll);
	p->foundation[ll] = ':';
	memcpy(p->foundation + ll + 1, rc->foundation, rl);
	p->foundation[ll + 1 + rl] = '\0';
}

/* s6.1.2.4: remove a pair redundant with a higher-priority one (same
 * local base, same remote candidate); the list is sorted. */
static void prune(struct ice_checklist *cl)
{
	unsigned out = 0;

	for (unsigned i = 0; i < cl->n_pairs; i++) {
		struct ice_pair *p = &cl->pairs[i];
		bool dup = false;
		p->local = (uint8_t)sending_local(cl, p->local);
		for (unsigned j = 0; j < out && !dup; j++)
			dup = cl->pairs[j].remote == p->remote &&
			      stun_sockaddr_equal(&cl->local[cl->pairs[j].local].base,
						  &cl->local[p->local].base);
		if (!dup)
			cl->pairs[out++] = *p;
	}
	cl->n_pairs = out;
}

/* s6.1.2.6: one Waiting pair per foundation, the first (lowest component,
 * then highest priority) in the list; the rest Frozen. */
static bool better_same_foundation(const struct ice_checklist *cl, unsigned i)
{
	const struct ice_pair *p = &cl->pairs[i];
	uint8_t pc = cl->local[p->local].component;

	for (unsigned j = 0; j < cl->n_pairs; j++) {
		const struct ice_pair *q = &cl->pairs[j];
		uint8_t qc = cl->local[q->local].component;
		if (j == i || strcmp(q->foundation, p->foundation))
			continue;
		if (qc < pc || (qc == pc && j < i))
			return true;
	}
	return false;
}

static void initial_states(struct ice_checklist *cl)
{
	for (unsigned i = 0; i < cl->n_pairs; i++)
		cl->pairs[i].state = better_same_foundation(cl, i) ? ICE_PAIR_FROZEN
								   : ICE_PAIR_WAITING;
}

unsigned ice_checklist_form(struct ice_checklist *cl)
{
	unsigned limit = cl->max_pairs ? cl->max_pairs : ICE_DEFAULT_MAX_PAIRS;

	cl->n_pairs = 0;
	cl->trig_head = cl->trig_len = 0;
	for (unsigned l = 0; l < cl->n_local; l++)
		for (unsigned r = 0; r < cl->n_remote; r++)
			if (pairable(&cl->local[l], &cl->remote[r]))
				pair_make(cl, l, r);
	qsort(cl->pairs, cl->n_pairs, sizeof(cl->pairs[0]), pair_cmp);
	prune(cl);
	/* s6.1.2.5: drop the lowest-priority pairs beyond the limit */
	if (cl->n_pairs > limit)
		cl->n_pairs = limit;
	initial_states(cl);
	return cl->n_pairs;
}

/* ---- scheduling (s6.1.4.2) ---- */

static bool foundation_active(const struct ice_checklist *cl, const char *f)
{
	for (unsigned i = 0; i < cl->n_pairs; i++) {
		const struct ice_pair *p = &cl->pairs[i];
		if ((p->state == ICE_PAIR_WAITING || p->state == ICE_PAIR_IN_PROGRESS) &&
		    !strcmp(p->foundation, f))
			return true;
	}
	return false;
}

/* Step 2: with nothing Waiting, unfreeze a pair of each foundation that
 * has none Waiting or In-Progress. */
static void unfreeze_idle_foundations(struct ice_checklist *cl)
{
	for (unsigned i = 0; i < cl->n_pairs; i++) {
		struct ice_pair *p = &cl->pairs[i];
		if (p->state == ICE_PAIR_FROZEN && !foundation_active(cl, p->foundation))
			p->state = ICE_PAIR_WAITING;
	}
}

/* The highest-priority pair in state st (pairs added after forming, e.g.
 * for peer-reflexive candidates, are appended: indexes stay stable). */
static int highest_in(const struct ice_checklist *cl, enum ice_pair_state st)
{
	int best = -1;

	for (unsigned i = 0; i < cl->n_pairs; i++)
		if (cl->pairs[i].state == st &&
		    (best < 0 || cl->pairs[i].priority > cl->pairs[best].priority))
			best = (int)i;
	return best;
}

static int highest_waiting(const struct ice_checklist *cl)
{
	return highest_in(cl, ICE_PAIR_WAITING);
}

int ice_checklist_next(struct ice_checklist *cl)
{
	int i;

	/* step 1: the triggered-check queue first */
	while (cl->trig_len) {
		i = cl->triggered[cl->trig_head];
		cl->trig_head = (cl->trig_head + 1) % ICE_MAX_PAIRS;
		cl->trig_len--;
		/* a pair that succeeded meanwhile needs no new check */
		if ((unsigned)i < cl->n_pairs && cl->pairs[i].state != ICE_PAIR_SUCCEEDED) {
			cl->pairs[i].state = ICE_PAIR_IN_PROGRESS;
			return i;
		}
	}
	i = highest_waiting(cl);
	if (i < 0) {
		unfreeze_idle_foundations(cl);
		i = highest_waiting(cl);
	}
	if (i >= 0)
		cl->pairs[i].state = ICE_PAIR_IN_PROGRESS;
	return i;
}

bool ice_checklist_trigger(struct ice_checklist *cl, unsigned i)
{
	bool was_in_progress;

	if (i >= cl->n_pairs || cl->pairs[i].state == ICE_PAIR_SUCCEEDED)
		return false;
	was_in_progress = cl->pairs[i].state == ICE_PAIR_IN_PROGRESS;
	/* s7.3.1.4: Frozen, Failed and (its transaction cancelled)
	 * In-Progress pairs become Waiting and are queued */
	cl->pairs[i].state = ICE_PAIR_WAITING;
	for (unsigned k = 0; k < cl->trig_len; k++)
		if (cl->triggered[(cl->trig_head + k) % ICE_MAX_PAIRS] == i)
			return was_in_progress;
	if (cl->trig_len >= ICE_MAX_PAIRS)
		return was_in_progress;
	cl->triggered[(cl->trig_head + cl->trig_len) % ICE_MAX_PAIRS] = (uint16_t)i;
	cl->trig_len++;
	return was_in_progress;
}

void ice_checklist_result(struct ice_checklist *cl, unsigned i, bool success)
{
	if (i >= cl->n_pairs)
		return;
	cl->pairs[i].state = success ? ICE_PAIR_SUCCEEDED : ICE_PAIR_FAILED;
	if (!success)
		return;
	/* s7.2.5.3.3: unfreeze the pairs that share the foundation */
	for (unsigned j = 0; j < cl->n_pairs; j++)
		if (cl->pairs[j].state == ICE_PAIR_FROZEN &&
		    !strcmp(cl->pairs[j].foundation, cl->pairs[i].foundation))
			cl->pairs[j].state = ICE_PAIR_WAITING;
}

int ice_checklist_find(const struct ice_checklist *cl, const stun_sockaddr *local_base,
		       const stun_sockaddr *remote)
{
	for (unsigned i = 0; i < cl->n_pairs; i++) {
		const struct ice_pair *p = &cl->pairs[i];
		if (stun_sockaddr_equal(&cl->local[p->local].base, local_base) &&
		    stun_sockaddr_equal(&cl->remote[p->remote].addr, remote))
			return (int)i;
	}
	return -1;
}

unsigned ice_checklist_rto_ms(const struct ice_checklist *cl, unsigned ta_ms)
{
	unsigned active = 0;
	unsigned long long rto;

	for (unsigned i = 0; i < cl->n_pairs; i++)
		if (cl->pairs[i].state == ICE_PAIR_WAITING ||
		    cl->pairs[i].state == ICE_PAIR_IN_PROGRESS)
			active++;
	rto = (unsigned long long)ta_ms * cl->n_pairs * active;
	if (rto < ICE_RTO_MIN_MS)
		return ICE_RTO_MIN_MS;
	return rto > 60000 ? 60000 : (unsigned)rto;
}

bool ice_checklist_failed(const struct ice_checklist *cl)
{
	for (unsigned i = 0; i < cl->n_pairs; i++)
		if (cl->pairs[i].state != ICE_PAIR_FAILED)
			return false;
	return true;
}

int ice_checklist_best_valid(const struct ice_checklist *cl)
{
	return highest_in(cl, ICE_PAIR_SUCCEEDED);
}

static uint64_t pair_prio(const struct ice_checklist *cl, const struct ice_pair *p)
{
	uint32_t l = cl->local[p->local].priority, r = cl->remote[p->remote].priority;

	return cl->controlling ? ice_pair_priority(l, r) : ice_pair_priority(r, l);
}

void ice_checklist_set_role(struct ice_checklist *cl, bool controlling)
{
	cl->controlling = controlling;
	for (unsigned i = 0; i < cl->n_pairs; i++)
		cl->pairs[i].priority = pair_prio(cl, &cl->pairs[i]);
}

int ice_checklist_add_remote(struct ice_checklist *cl, const struct ice_cand *c)
{
	unsigned r = cl->n_remote;

	if (r >= ICE_MAX_CANDS)
		return -1;
	cl->remote[cl->n_remote++] = *c;
	for (unsigned l = 0; l < cl->n_local && cl->n_pairs < ICE_MAX_PAIRS; l++) {
		if (is_reflexive(cl->local[l].type) || !pairable(&cl->local[l], c))
			continue; /* s6.1.2.4: checks go from bases */
		pair_make(cl, l, r);
		cl->pairs[cl->n_pairs - 1].state = ICE_PAIR_WAITING;
	}
	return (int)r;
}
