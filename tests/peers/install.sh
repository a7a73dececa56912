#!/usr/bin/env bash
# Installs the real peers the test suite drives (SIPp, baresip, linphonec, tshark, sox,
# espeak-ng, Chromium, openssl, dnsmasq, Node.js and npm) and the infrastructure a cluster runs
# on (Kamailio, Redis, PostgreSQL) from Debian when any is missing, and playwright-core from npm.
# Called by `make test`; safe to run again (it installs nothing when all are present).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

need=()
command -v sipp       >/dev/null || need+=(sip-tester)
command -v baresip    >/dev/null || need+=(baresip-core)
command -v linphonec  >/dev/null || need+=(linphone-cli)
command -v tshark     >/dev/null || need+=(tshark)
command -v sox        >/dev/null || need+=(sox)
command -v espeak-ng  >/dev/null || need+=(espeak-ng)
command -v chromium   >/dev/null || need+=(chromium)
command -v openssl    >/dev/null || need+=(openssl)
command -v ip         >/dev/null || need+=(iproute2)
command -v dnsmasq    >/dev/null || need+=(dnsmasq-base)  # a DNS server for RFC 3263 tests
command -v node       >/dev/null || need+=(nodejs)  # runs playwright-core (browser tests)
command -v npm        >/dev/null || need+=(npm)
command -v kamailio   >/dev/null || need+=(kamailio)      # the SIP front of a cluster
command -v redis-server >/dev/null || need+=(redis-server)  # the cluster registry
# shared call records; Debian keeps the server programs off PATH
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null \
  || need+=(postgresql)

if [ ${#need[@]} -gt 0 ]; then
  echo "installing peers from Debian: ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# playwright-core drives Debian's Chromium (never a downloaded browser); @openai/agents-realtime
# is the browser SDK the tests load. `npm ls` fails when any package.json dependency is missing.
if command -v npm >/dev/null && ! (cd "$here" && npm ls --depth=0 >/dev/null 2>&1); then
  (cd "$here" && npm install --silent --no-audit --no-fund >/dev/null)
fi
echo "peers ready"
