#!/usr/bin/env bash
# Install the Debian 12 packages the build and the tests need, if missing.
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libmbedtls-dev libev-dev libcunit1-dev libidn-dev zlib1g-dev
      python3 openssl coturn iproute2 nftables iptables conntrack docker-compose)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Debian starts coturn's own service on install on some systems; our tests
# start their own turnserver processes and must not share ports with it.
if command -v systemctl >/dev/null 2>&1; then systemctl stop coturn >/dev/null 2>&1 || true; fi
