#!/usr/bin/env bash
# Pass-through benchmark: make sure nginx and wrk exist, then run bench/passthrough.py.
# Usage: bash bench/run.sh [--quick] [--only TARGET ...]   (see bench/README.md)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

APT_TIMEOUT="${BENCH_APT_TIMEOUT:-600}"

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

# Prints the first of the given package names that the configured apt sources offer.
first_available() {
  local pkg candidate
  for pkg in "$@"; do
    candidate="$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2; exit}')"
    if [ -n "$candidate" ] && [ "$candidate" != "(none)" ]; then
      echo "$pkg"
      return 0
    fi
  done
  return 1
}

missing=()
have nginx || missing+=(nginx)
have wrk || missing+=(wrk)
have taskset || missing+=(taskset)

if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "bench: missing ${missing[*]} and apt-get is not available; install them by hand." >&2
    exit 2
  fi
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo -n)
  fi
  echo "bench: installing ${missing[*]} from Debian packages" >&2
  timeout "$APT_TIMEOUT" "${SUDO[@]}" apt-get update -q
  packages=()
  for tool in "${missing[@]}"; do
    case "$tool" in
      nginx)
        if ! pkg="$(first_available nginx-light nginx)"; then
          echo "bench: no nginx package in the apt sources" >&2
          exit 2
        fi
        packages+=("$pkg")
        ;;
      wrk) packages+=(wrk) ;;
      taskset) packages+=(util-linux) ;;
    esac
  done
  # policy-rc.d-less hosts start the packaged nginx service on :80; the benchmark never uses it.
  timeout "$APT_TIMEOUT" "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${packages[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  echo "bench: .venv/bin/python not found; run 'make install' first." >&2
  exit 2
fi

exec .venv/bin/python bench/passthrough.py "$@"
