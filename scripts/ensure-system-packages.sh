#!/usr/bin/env bash
# Install the Debian packages a purpose needs, only where they are missing.
#   run:  redis-server (optional: `make run` reuses a Redis that already answers)
#   test: redis-server, chromium (browser tests), PostgreSQL server binaries (throwaway clusters), caddy (the
#         deployment's proxy, run with docker/Caddyfile in front of gunicorn by the slow-client tests),
#         opencv-doc (OpenCV's sample photos: the engine tests and bench/bench_engine_quality.py use some; an image
#         whose dpkg config excludes /usr/share/doc needs that exclusion lifted for this package)
set -euo pipefail
purpose=${1:-test}
missing=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have redis-server || missing+=(redis-server)
if [ "$purpose" = test ]; then
  have chromium || [ -x /usr/bin/chromium ] || missing+=(chromium)
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || have initdb || missing+=(postgresql)
  # Fonts so pages and screenshots render readable text in headless Chromium.
  [ -d /usr/share/fonts/truetype/dejavu ] || missing+=(fonts-dejavu-core)
  have caddy || missing+=(caddy)
  [ -d /usr/share/doc/opencv-doc/examples/data ] || missing+=(opencv-doc)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$purpose" = run ] && ! { command -v apt-get >/dev/null 2>&1; }; then
  exit 0  # scripts/dev.py explains how to get Redis if none answers
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "Missing system packages: ${missing[*]}. Install them with your package manager." >&2
  exit 1
fi
echo "Installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts services it installs; the tests start private ones on free ports instead.
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
  command -v pg_ctlcluster >/dev/null 2>&1 && $sudo pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main stop 2>/dev/null || true
fi
if [[ " ${missing[*]} " == *" caddy "* ]] && command -v systemctl >/dev/null 2>&1; then
  $sudo systemctl disable --now caddy 2>/dev/null || true  # it would hold port 80; tests run their own
fi
