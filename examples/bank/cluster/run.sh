#!/usr/bin/env bash
# Two Bastion nodes in front of one bank, sharing PostgreSQL (store) and Redis (rate limits):
#   node A: https://127.0.0.1:8443 (admin :9901)   node B: https://127.0.0.1:8444 (admin :9902)
# Run from the repository root after `make install`; Ctrl-C stops all three processes.
set -euo pipefail
cd "$(dirname "$0")/../../.."
set -a; . examples/bank/cluster/cluster.env; set +a
state=var/cluster
mkdir -p "$state"
chmod 700 "$state"
export BASTION_STATE_DIR="$PWD/$state" BASTION_ADMIN_TOKEN="${BASTION_ADMIN_TOKEN:-$(head -c 24 /dev/urandom | base64 | tr -d '/+=')}"
# The demo identity provider signs customer tokens; both nodes trust its JWKS.
.venv/bin/python - <<'PY'
import os
from pathlib import Path
from bastion.cli.demo import demo_identity_provider, write_credentials
state = Path(os.environ["BASTION_STATE_DIR"])
_, tokens = demo_identity_provider(state)
print("credentials:", write_credentials(state, os.environ["BASTION_ADMIN_TOKEN"], tokens))
PY
export BANK_JWKS_FILE="$BASTION_STATE_DIR/jwks.json"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
.venv/bin/python -m examples.bank --port 9000 --db "$state/bank.db" & pids+=($!)
BANK_HTTPS_BIND=127.0.0.1:8443 BANK_HTTP_BIND=127.0.0.1:8080 BANK_ADMIN_BIND=127.0.0.1:9901 \
  .venv/bin/bastion run -c examples/bank/bastion.yaml & pids+=($!)
BANK_HTTPS_BIND=127.0.0.1:8444 BANK_HTTP_BIND=127.0.0.1:8081 BANK_ADMIN_BIND=127.0.0.1:9902 \
  .venv/bin/bastion run -c examples/bank/bastion.yaml & pids+=($!)
echo "node A https://127.0.0.1:8443  node B https://127.0.0.1:8444  (Ctrl-C stops both)"
wait
