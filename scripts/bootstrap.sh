#!/usr/bin/env bash
# Installs what natlb, its demo and its tests need on a fresh Debian machine (as root) and builds it:
# apt packages, npm packages, the native addon (cmake-js, during `npm ci`) and the TypeScript (tsc,
# during `npm ci`). The benchmark installs haproxy itself when it runs.
# Idempotent: a second run skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ip >/dev/null || need+=(iproute2)
command -v ethtool >/dev/null || need+=(ethtool)
# The https health-check test makes a self-signed certificate.
command -v openssl >/dev/null || need+=(openssl)
command -v iptables >/dev/null || need+=(iptables)
# The kernel set-up's ownership table (src/kernel) is an nftables table.
command -v nft >/dev/null || need+=(nftables)
command -v sysctl >/dev/null || need+=(procps)
command -v cmake >/dev/null || need+=(cmake)
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
[ -e /usr/include/pcap/pcap.h ] || need+=(libpcap-dev)
# The BPF programs (AF_XDP receive path, kernel fast path): libbpf loads them; clang compiles them.
[ -e /usr/include/bpf/libbpf.h ] || need+=(libbpf-dev)
[ -e /usr/include/openssl/hmac.h ] || need+=(libssl-dev)  # the flow sync's HMAC (libcrypto)
command -v clang >/dev/null || need+=(clang)
# The fuzz harnesses and the sanitized addon (test/fuzz.test.ts, test/sanitizers.test.ts): clang's
# libFuzzer, ASan and UBSan runtimes (only recommended by Debian's clang).
[ -e "$(clang -print-file-name=libclang_rt.fuzzer-x86_64.a 2>/dev/null)" ] || need+=(libclang-rt-dev)
# The tests check the systemd unit (systemd/natlb.service) with systemd-analyze.
command -v systemd-analyze >/dev/null || need+=(systemd)
# The high-availability pair and the ECMP lab run the existing engines: keepalived (VRRP) and BIRD (BGP).
command -v keepalived >/dev/null || need+=(keepalived)
command -v bird >/dev/null || need+=(bird2)
if [ ${#need[@]} -gt 0 ]; then
  echo "bootstrap: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

stamp=node_modules/.natlb-installed
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ ! -f build-cmake/Release/natlb.node ]; then
  npm ci --no-audit --no-fund --loglevel=error
  touch "$stamp"
else
  npm run --silent build >/dev/null
fi
