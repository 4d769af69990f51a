#!/usr/bin/env bash
# Installs the real peers the tests use: sipp (Debian package sip-tester), tshark, the SIP
# clients baresip and linphonec (linphone-cli), Kamailio 5.6 with its IMS and presence modules
# (the I-CSCF/S-CSCF of tests/e2e/kamailio.rs; the IMS S-CSCF's usrloc needs the presence
# module), the attacker tools svwar and svcrack (sipvicious, tests/e2e/attackers.rs), sngrep
# (listening for HEP, tests/e2e/hep.rs), the SMPP client library smpplib (PyPI, pinned in
# tests/smpp/requirements.txt, into the venv tests/smpp/venv: tests/e2e/smpp_interop.rs), and
# for the browser test chromium and playwright-core (scripts/install-browser.sh).
# Idempotent: does nothing when they are already there.
set -euo pipefail
# The browser test's peers: Debian chromium and playwright-core from npm.
bash "$(dirname "$0")/install-browser.sh"
need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v tshark >/dev/null 2>&1 || need+=(tshark)
command -v sngrep >/dev/null 2>&1 || need+=(sngrep)
command -v baresip >/dev/null 2>&1 || need+=(baresip)
command -v linphonec >/dev/null 2>&1 || need+=(linphone-cli)
command -v svcrack >/dev/null 2>&1 || need+=(sipvicious)
# curl: README's walkthrough (/metrics) and the namespace test's WebRSF login; iproute2: the
# namespace lab (`ip netns`, scripts/netns-lab.sh).
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
KAMAILIO_MODULES=/usr/lib/x86_64-linux-gnu/kamailio/modules
[ -x /usr/sbin/kamailio ] || need+=(kamailio)
[ -e "$KAMAILIO_MODULES/ims_icscf.so" ] || need+=(kamailio-ims-modules)
[ -e "$KAMAILIO_MODULES/presence.so" ] || need+=(kamailio-presence-modules)
# smpplib goes into a venv of its own (Debian's python3 refuses `pip install` outside one,
# PEP 668); the venv needs python3-venv.
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  echo "install-peers: installing ${need[*]}" >&2
  $SUDO apt-get update -qq
  # wireshark-common asks whether non-root users may capture; the preseed answers it.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections || true
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
SMPP_DIR="$(cd "$(dirname "$0")/.." && pwd)/tests/smpp"
SMPP_PY="$SMPP_DIR/venv/bin/python3"
want_smpplib=$(sed -n 's/^smpplib==//p' "$SMPP_DIR/requirements.txt")
have_smpplib=$("$SMPP_PY" -c 'import importlib.metadata as m; print(m.version("smpplib"))' 2>/dev/null || true)
if [ "$have_smpplib" != "$want_smpplib" ]; then
  echo "install-peers: installing smpplib $want_smpplib into tests/smpp/venv" >&2
  [ -x "$SMPP_PY" ] || python3 -m venv "$SMPP_DIR/venv"
  "$SMPP_PY" -m pip install -q --disable-pip-version-check -r "$SMPP_DIR/requirements.txt"
fi
command -v sipp >/dev/null && command -v tshark >/dev/null && command -v sngrep >/dev/null
command -v baresip >/dev/null && command -v linphonec >/dev/null
command -v svwar >/dev/null && command -v svcrack >/dev/null
command -v curl >/dev/null && command -v ip >/dev/null
[ -x /usr/sbin/kamailio ] && [ -e "$KAMAILIO_MODULES/ims_icscf.so" ] && [ -e "$KAMAILIO_MODULES/presence.so" ]
"$SMPP_PY" -c 'import smpplib.client, smpplib.gsm' >/dev/null
if [ ${#need[@]} -gt 0 ] || [ "$have_smpplib" != "$want_smpplib" ]; then
  echo "install-peers: ok ($(sipp -v 2>/dev/null | grep -o 'v[0-9.]*' | head -1), $(tshark --version | head -1), $(/usr/sbin/kamailio -v | head -1), smpplib $want_smpplib)" >&2
fi
