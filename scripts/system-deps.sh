#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real: Prometheus scrapes /metrics,
# headless Chromium walks the pages Bastion serves, rsyslog receives the syslog sink's lines.
# Idempotent: does nothing when every binary is present. Without root (and no passwordless sudo)
# it only warns: the tests that need a missing tool then skip locally, and fail when CI=true.
set -euo pipefail

declare -A PACKAGES=([prometheus]=prometheus [chromium]=chromium [rsyslogd]=rsyslog)
missing=()
for binary in "${!PACKAGES[@]}"; do
  command -v "$binary" >/dev/null 2>&1 || missing+=("${PACKAGES[$binary]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "system-deps: not root; skipping apt-get install of: ${missing[*]}" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
timeout 300 "${as_root[@]}" apt-get update -qq
timeout 600 "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "system-deps: installed ${missing[*]}" >&2
