"""Interop with peers nobody here wrote: Debian coturn's turnutils_stunclient
and turnutils_natdiscovery -m -f against stund on 127.0.0.1 + 127.0.0.2."""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Stund, free_port, test, run_tests
from stund_helpers import conf

PORT = free_port(count=2)
srv = None


def server():
    global srv
    if srv is None:
        srv = Stund(conf(PORT, ("127.0.0.1", "127.0.0.2")))
    return srv


def tool(name):
    path = shutil.which(name)
    assert path, "%s not found: install Debian's coturn (scripts/deps.sh)" % name
    return path


@test
def turnutils_stunclient_reports_mapped_address():
    server()
    out = subprocess.run([tool("turnutils_stunclient"), "-p", str(PORT), "127.0.0.1"],
                         capture_output=True, text=True, timeout=30)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert re.search(r"UDP reflexive addr: 127\.0\.0\.1:\d+", text), text
    assert "Other addr: : 127.0.0.2:%d" % (PORT + 1) in text, text
    assert "Response origin: : 127.0.0.2:%d" % (PORT + 1) in text, "change IP+port honoured:\n" + text


@test
def turnutils_natdiscovery_mapping_and_filtering():
    server()
    out = subprocess.run([tool("turnutils_natdiscovery"), "-m", "-f", "-p", str(PORT), "127.0.0.1"],
                         capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    assert re.search(r"UDP reflexive addr: 127\.0\.0\.1:\d+", text), text
    assert "NAT with Endpoint Independent Mapping" in text, text
    assert "NAT with Endpoint Independent Filtering" in text, text


if __name__ == "__main__":
    run_tests()
