#!/usr/bin/env bash
# Installs what the hub needs on Debian 12 / Raspberry Pi OS: the Debian
# packages (as root, or through sudo) and a virtual environment in .venv.
#   scripts/setup.sh          the hub and the demo (prosody, openssl)
#   scripts/setup.sh --test   also the test servers and tools (ejabberd, mosquitto, mosquitto-clients)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

packages=(prosody openssl python3-venv python3-dev)
[ $want_test = 1 ] && packages+=(ejabberd mosquitto mosquitto-clients coreutils)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "setup: installing Debian packages: ${missing[*]}"
    # The packages' own services are not used (the hub starts private servers
    # on other ports); keep apt from starting them where it can be told so.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
        $sudo chmod +x /usr/sbin/policy-rc.d
        trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($python --version)"
    $python -m venv .venv
fi
extras="speed"
[ $want_test = 1 ] && extras="speed,test"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[$extras]"
