/* Unit tests for client/discover.c classifiers: RFC 5780 s4.3 mapping and
 * s4.4 filtering results, the classic NAT names, and the port allocation
 * pattern from a list of mapped ports. No network. */
#include <CUnit/Basic.h>
#include <string.h>

#include "discover.h"
#include "unit_util.h"

static stun_sockaddr A(const char *s)
{
	stun_sockaddr a;

	CU_ASSERT_EQUAL_FATAL(stun_sockaddr_parse(&a, s, 0), 0);
	return a;
}

static void test_mapping(void)
{
	stun_sockaddr local = A("10.0.0.2:4000"), pub = A("198.51.100.7:4000");
	stun_sockaddr pub2 = A("198.51.100.7:4001"), pub3 = A("198.51.100.7:4002");
	stun_sockaddr same_as_local = A("10.0.0.2:4000");

	CU_ASSERT_EQUAL(nat_mapping_classify(&local, NULL, NULL, NULL), NAT_MAP_UNKNOWN);
	CU_ASSERT_EQUAL(nat_mapping_classify(&local, &same_as_local, NULL, NULL), NAT_MAP_NONE);
	/* a NAT, but test II did not answer */
	CU_ASSERT_EQUAL(nat_mapping_classify(&local, &pub, NULL, NULL), NAT_MAP_UNKNOWN);
	CU_ASSERT_EQUAL(nat_mapping_classify(&local, &pub, &pub, NULL), NAT_MAP_EI);
	CU_ASSERT_EQUAL(nat_mapping_classify(&local, &pub, &pub2, NULL), NAT_MAP_UNKNOWN);
	CU_ASSERT_EQUAL(nat_mapping_classify(&local, &pub, &pub2, &pub2), NAT_MAP_AD);
	CU_ASSERT_EQUAL(nat_mapping_classify(&local, &pub, &pub2, &pub3), NAT_MAP_APD);
	/* same port, other IP: a pooled NAT is still not "none" */
	stun_sockaddr other_ip = A("10.0.0.3:4000");
	CU_ASSERT_EQUAL(nat_mapping_classify(&local, &other_ip, &other_ip, NULL), NAT_MAP_EI);
}

static void test_filtering(void)
{
	CU_ASSERT_EQUAL(nat_filtering_classify(NAT_PROBE_ANSWER, NAT_PROBE_NOT_RUN), NAT_FILT_EI);
	CU_ASSERT_EQUAL(nat_filtering_classify(NAT_PROBE_NO_ANSWER, NAT_PROBE_ANSWER), NAT_FILT_AD);
	CU_ASSERT_EQUAL(nat_filtering_classify(NAT_PROBE_NO_ANSWER, NAT_PROBE_NO_ANSWER),
			NAT_FILT_APD);
	CU_ASSERT_EQUAL(nat_filtering_classify(NAT_PROBE_NO_ANSWER, NAT_PROBE_NOT_RUN),
			NAT_FILT_UNKNOWN);
	CU_ASSERT_EQUAL(nat_filtering_classify(NAT_PROBE_NOT_RUN, NAT_PROBE_NOT_RUN),
			NAT_FILT_UNKNOWN);
}

static void test_nat_type(void)
{
	CU_ASSERT_STRING_EQUAL(nat_type_name(NAT_MAP_NONE, NAT_FILT_EI), "open internet");
	CU_ASSERT_STRING_EQUAL(nat_type_name(NAT_MAP_NONE, NAT_FILT_UNKNOWN), "open internet");
	CU_ASSERT_STRING_EQUAL(nat_type_name(NAT_MAP_NONE, NAT_FILT_APD), "symmetric udp firewall");
	CU_ASSERT_STRING_EQUAL(nat_type_name(NAT_MAP_EI, NAT_FILT_EI), "full cone");
	CU_ASSERT_STRING_EQUAL(nat_type_name(NAT_MAP_EI, NAT_FILT_AD), "restricted cone");
	CU_ASSERT_STRING_EQUAL(nat_type_name(NAT_MAP_EI, NAT_FILT_APD), "port-restricted cone");
	CU_ASSERT_STRING_EQUAL(nat_type_name(NAT_MAP_EI, NAT_FILT_UNKNOWN), "unknown");
	CU_ASSERT_STRING_EQUAL(nat_type_name(NAT_MAP_AD, NAT_FILT_EI), "symmetric");
	CU_ASSERT_STRING_EQUAL(nat_type_name(NAT_MAP_APD, NAT_FILT_APD), "symmetric");
	CU_ASSERT_STRING_EQUAL(nat_type_name(NAT_MAP_UNKNOWN, NAT_FILT_EI), "unknown");
}

static void test_names(void)
{
	CU_ASSERT_STRING_EQUAL(nat_mapping_str(NAT_MAP_NONE), "none");
	CU_ASSERT_STRING_EQUAL(nat_mapping_str(NAT_MAP_EI), "endpoint-independent");
	CU_ASSERT_STRING_EQUAL(nat_mapping_str(NAT_MAP_AD), "address-dependent");
	CU_ASSERT_STRING_EQUAL(nat_mapping_str(NAT_MAP_APD), "address-and-port-dependent");
	CU_ASSERT_STRING_EQUAL(nat_filtering_str(NAT_FILT_APD), "address-and-port-dependent");
	CU_ASSERT_STRING_EQUAL(nat_port_alloc_str(NAT_PORT_SEQUENTIAL), "sequential");
	CU_ASSERT_STRING_EQUAL(nat_port_alloc_str(NAT_PORT_UNKNOWN), "unknown");
}

static void test_ports(void)
{
	int delta = 99;

	CU_ASSERT_EQUAL(nat_port_classify(5000, NULL, 0, &delta), NAT_PORT_UNKNOWN);
	const uint16_t pres[] = { 5000, 5000, 5000, 5000 };
	CU_ASSERT_EQUAL(nat_port_classify(5000, pres, 4, &delta), NAT_PORT_PRESERVING);
	CU_ASSERT_EQUAL(nat_port_classify(5000, pres, 1, &delta), NAT_PORT_PRESERVING);
	/* one mapping, not the local port: an EIM NAT tells nothing more */
	CU_ASSERT_EQUAL(nat_port_classify(4000, pres, 4, &delta), NAT_PORT_UNKNOWN);
	CU_ASSERT_EQUAL(delta, 99);

	const uint16_t seq1[] = { 61000, 61001, 61002, 61003 };
	CU_ASSERT_EQUAL(nat_port_classify(5000, seq1, 4, &delta), NAT_PORT_SEQUENTIAL);
	CU_ASSERT_EQUAL(delta, 1);
	/* first mapping preserved, then +2 each */
	const uint16_t seq2[] = { 5000, 5002, 5004, 5006 };
	CU_ASSERT_EQUAL(nat_port_classify(5000, seq2, 4, &delta), NAT_PORT_SEQUENTIAL);
	CU_ASSERT_EQUAL(delta, 2);
	const uint16_t down[] = { 40010, 40007, 40004 };
	CU_ASSERT_EQUAL(nat_port_classify(5000, down, 3, &delta), NAT_PORT_SEQUENTIAL);
	CU_ASSERT_EQUAL(delta, -3);
	/* address-dependent mapping: repeats of a mapping are one mapping */
	const uint16_t adm[] = { 7000, 7000, 7001, 7001, 7002 };
	CU_ASSERT_EQUAL(nat_port_classify(5000, adm, 5, &delta), NAT_PORT_SEQUENTIAL);
	CU_ASSERT_EQUAL(delta, 1);
	/* two mappings are one difference: no pattern */
	const uint16_t two[] = { 7000, 7000, 7005, 7005 };
	CU_ASSERT_EQUAL(nat_port_classify(5000, two, 4, &delta), NAT_PORT_UNKNOWN);

	const uint16_t rnd[] = { 31244, 58012, 1207, 44410 };
	CU_ASSERT_EQUAL(nat_port_classify(5000, rnd, 4, &delta), NAT_PORT_RANDOM);
	const uint16_t almost[] = { 7000, 7001, 7002, 7004 };
	CU_ASSERT_EQUAL(nat_port_classify(5000, almost, 4, &delta), NAT_PORT_RANDOM);
}

int main(void)
{
	static const struct unit_case cases[] = {
		{ "mapping (RFC 5780 s4.3)", test_mapping },
		{ "filtering (RFC 5780 s4.4)", test_filtering },
		{ "classic NAT type names", test_nat_type },
		{ "RFC 4787 terms", test_names },
		{ "port allocation pattern", test_ports },
		{ NULL, NULL },
	};

	return unit_run("client_discover", cases);
}
