#!/usr/bin/env bash
# Installs the external binaries kefu's tests need (Debian/Ubuntu):
#   redis-server, redis-cli  -> engine and store tests (internal/testredis)
#   chromium, chromedriver   -> console browser tests
#   nginx                    -> `nginx -t` on deployments/nginx.conf
# Idempotent: packages already on PATH are left alone. Uses sudo only when
# not running as root.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi

missing=()
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
	missing+=(redis-server redis-tools)
fi
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
	missing+=(chromium chromium-driver)
fi
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
	missing+=(nginx-light)
fi
# Chinese text in browser screenshots (console, dashboard) renders as boxes without a CJK font.
if ! fc-list 2>/dev/null | grep -qi 'wqy\|noto.*cjk'; then
	missing+=(fonts-wqy-zenhei)
fi

if [ "${#missing[@]}" -eq 0 ]; then
	echo "install-test-deps: everything already installed"
	exit 0
fi

echo "install-test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
