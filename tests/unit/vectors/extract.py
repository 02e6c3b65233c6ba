#!/usr/bin/env python3
"""Regenerate the binary test vectors in this directory from the RFC texts.

Usage: python3 extract.py [RFC_DIR]   (default: ../../../../shared/rfc)
Writes rfc5769_2_1.bin .. rfc5769_2_4.bin (RFC 5769 s2.1-2.4) and
rfc8489_b1.bin (RFC 8489 appendix B.1, bytes exactly as printed, including
its length field 0x009c that counts the header; see test_stun_msg.c).
"""
import os, re, sys

rfc = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), '../../../../shared/rfc')


def hexdump(txt, title, nxt):
    a = [m.start() for m in re.finditer(re.escape(title), txt)][-1]
    out = bytearray()
    for ln in txt[a:txt.index(nxt, a + len(title))].split('\n'):
        m = re.match(r'^\s+((?:[0-9a-f]{2} ){3}[0-9a-f]{2})(\s|$)', ln)
        if m:
            out += bytes.fromhex(m.group(1).replace(' ', ''))
    return bytes(out)


def load(name):
    return open(os.path.join(rfc, name), encoding='utf-8').read().replace('\f', '')


t = load('rfc5769.txt')
vec = {
    'rfc5769_2_1.bin': hexdump(t, '2.1.  Sample Request', '2.2.  Sample IPv4 Response'),
    'rfc5769_2_2.bin': hexdump(t, '2.2.  Sample IPv4 Response', '2.3.  Sample IPv6 Response'),
    'rfc5769_2_3.bin': hexdump(t, '2.3.  Sample IPv6 Response', '2.4.  Sample Request with Long-Term'),
    'rfc5769_2_4.bin': hexdump(t, '2.4.  Sample Request with Long-Term Authentication',
                               '3.  Security Considerations'),
}
t = load('rfc8489.txt')
vec['rfc8489_b1.bin'] = hexdump(t, 'INTEGRITY-SHA256 and USERHASH\n\n   This request', 'Acknowledgements')
here = os.path.dirname(os.path.abspath(__file__))
for name, data in vec.items():
    with open(os.path.join(here, name), 'wb') as f:
        f.write(data)
    print(name, len(data))
