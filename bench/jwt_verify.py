"""Micro-benchmark of the jwt policy's access phase: µs per request, cache hit and miss (RS256).

Runs in a few seconds on one core, in-process, no sockets:

    .venv/bin/python bench/jwt_verify.py [--hits N] [--misses N] [--json]

- `hit`: `JWTPolicy.access` on a token already in the verified-token cache (header scan, dict
  lookup, expiry check, `ctx.authenticate`) — the DESIGN.md §5 budget is 2 µs.
- `miss-rs256`: `JWTPolicy.access` with the cache off, so every call parses, checks the header,
  verifies an RSA-2048 signature and the claims — the budget is 60 µs.
- `verify-rs256` / `verify-es256`: `verify_access_token()` alone, for comparison.

The figures are CPU-bound wall time on this machine; other load on the cores inflates them.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from bastion.clock import SystemClock
from bastion.core.context import RequestContext
from bastion.core.policy import PolicyDeps
from bastion.http.headers import Headers
from bastion.http.request import Request
from bastion.policies.jwt.config import JWTConfig
from bastion.policies.jwt.keys import parse_jwks
from bastion.policies.jwt.policy import JWTPolicy
from bastion.policies.jwt.verify import TokenRules, verify_access_token

ISSUER = "https://idp.example.test"
AUDIENCE = "bench-api"
BUDGET_US = {"hit": 2.0, "miss-rs256": 60.0}


def _token(key: RSAKey | ECKey, alg: str) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "exp": now + 3600,
        "iat": now,
        "jti": "bench",
        "scope": "accounts:read transfers:write",
    }
    return jwt.encode({"alg": alg, "kid": key.kid}, claims, key, algorithms=[alg])


def _ctx(authorization: bytes) -> RequestContext:
    headers = Headers(
        [
            (b"host", b"api.example.test"),
            (b"user-agent", b"bench/1.0"),
            (b"accept", b"application/json"),
            (b"authorization", authorization),
        ]
    )
    request = Request("GET", "/v1/accounts", b"", headers)
    return RequestContext(request, start=0.0)


def _per_call_us(fn: Callable[[], object], count: int) -> float:
    fn()  # warm up
    best = float("inf")
    for _ in range(3):  # best of three: the least disturbed by other load
        start = time.perf_counter_ns()
        for _ in range(count):
            fn()
        best = min(best, (time.perf_counter_ns() - start) / count / 1000)
    return best


def run(hits: int, misses: int) -> dict[str, float]:
    """Measure each case; returns µs per call by case name."""
    rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
    ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
    document = json.dumps({"keys": [rsa.as_dict(private=False), ec.as_dict(private=False)]})
    allowed = frozenset({"RS256", "ES256"})
    keys = parse_jwks(document.encode(), allowed)
    rules = TokenRules(ISSUER, frozenset({AUDIENCE}), allowed)
    clock = SystemClock()
    rs_token, es_token = _token(rsa, "RS256"), _token(ec, "ES256")
    pem = rsa.as_pem(private=False).decode()

    def policy(cache_size: int) -> JWTPolicy:
        config = JWTConfig(
            issuer=ISSUER, audience=AUDIENCE, public_key_pem=pem, cache_size=cache_size
        )
        return JWTPolicy(config, PolicyDeps(clock=clock))

    header = b"Bearer " + rs_token.encode()
    cached, uncached = policy(10_000), policy(0)
    hit_ctx, miss_ctx = _ctx(header), _ctx(header)

    return {
        "hit": _per_call_us(lambda: cached.access(hit_ctx), hits),
        "miss-rs256": _per_call_us(lambda: uncached.access(miss_ctx), misses),
        "verify-rs256": _per_call_us(
            lambda: verify_access_token(rs_token, keys, rules, clock), misses
        ),
        "verify-es256": _per_call_us(
            lambda: verify_access_token(es_token, keys, rules, clock), misses
        ),
    }


def main() -> None:
    """Parse arguments, measure, print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hits", type=int, default=200_000, help="calls per cache-hit round")
    parser.add_argument("--misses", type=int, default=2_000, help="calls per miss round")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    results = run(args.hits, args.misses)
    if args.json:
        print(json.dumps({name: round(us, 3) for name, us in results.items()}))
        return
    print(f"{'case':<14} {'µs/call':>9} {'budget':>8}")
    for name, us in results.items():
        budget = BUDGET_US.get(name)
        verdict = "" if budget is None else ("  ok" if us <= budget else "  OVER")
        shown = f"{budget:.0f}" if budget is not None else "-"
        print(f"{name:<14} {us:>9.2f} {shown:>8}{verdict}")


if __name__ == "__main__":
    main()
