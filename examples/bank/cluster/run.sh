#!/usr/bin/env bash
# Two Bastion nodes in front of one bank, sharing PostgreSQL (store: OAuth clients, logins, codes,
# refresh tokens, signing keys) and Redis (rate limits):
#   node A: https://127.0.0.1:8443 (admin :9901)   node B: https://127.0.0.1:8444 (admin :9902)
# Both run examples/bank/bastion.yaml with the same OAuth issuer, so a token from one node is
# accepted by the other. Run from the repository root after `make install`; Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/../../.."
set -a; . examples/bank/cluster/cluster.env; set +a
state=var/cluster
mkdir -p "$state"
chmod 700 "$state"
export BASTION_STATE_DIR="$PWD/$state" BASTION_ADMIN_TOKEN="${BASTION_ADMIN_TOKEN:-$(head -c 24 /dev/urandom | base64 | tr -d '/+=')}"
# Register the partner and customer-app clients and the customers' logins in PostgreSQL (once;
# later runs reuse them) and print the bank's --link arguments (gateway identity = customer).
links=$(.venv/bin/python - <<'PY'
import os
from pathlib import Path
from bastion.cli.demo import BANK_CONFIG
from bastion.cli.demo_oauth import provision_demo
from bastion.config.loader import load_config
state = Path(os.environ["BASTION_STATE_DIR"])
demo = provision_demo(load_config(BANK_CONFIG, env=dict(os.environ)), state)
print(" ".join(f"--link {subject}={customer}" for subject, customer in demo.links()))
PY
)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
# shellcheck disable=SC2086  # $links is a list of arguments
.venv/bin/python -m examples.bank --port 9000 --db "$state/bank.db" $links & pids+=($!)
BANK_HTTPS_BIND=127.0.0.1:8443 BANK_HTTP_BIND=127.0.0.1:8080 BANK_ADMIN_BIND=127.0.0.1:9901 \
  .venv/bin/bastion run -c examples/bank/bastion.yaml & pids+=($!)
# Node B starts once A is ready: A makes the development certificate both of them serve.
until curl -sf http://127.0.0.1:9901/ready >/dev/null; do sleep 0.3; done
BANK_HTTPS_BIND=127.0.0.1:8444 BANK_HTTP_BIND=127.0.0.1:8081 BANK_ADMIN_BIND=127.0.0.1:9902 \
  .venv/bin/bastion run -c examples/bank/bastion.yaml & pids+=($!)
until curl -sf http://127.0.0.1:9902/ready >/dev/null; do sleep 0.3; done
# Tokens through the real flows on node A (client credentials; authorization code + PKCE).
.venv/bin/python - <<'PY'
import os
from pathlib import Path
from bastion.cli.demo import BANK_CONFIG, demo_tokens, write_credentials
from bastion.cli.demo_oauth import provision_demo
from bastion.config.loader import load_config
from bastion.proxy.tls import client_context
state = Path(os.environ["BASTION_STATE_DIR"])
demo = provision_demo(load_config(BANK_CONFIG, env=dict(os.environ)), state)
tokens = demo_tokens(demo, "https://127.0.0.1:8443", verify=client_context(ca_file=state / "dev-cert.pem"))
print("credentials:", write_credentials(state, os.environ["BASTION_ADMIN_TOKEN"], demo, tokens))
PY
echo "node A https://127.0.0.1:8443  node B https://127.0.0.1:8444  (Ctrl-C stops both)"
wait
