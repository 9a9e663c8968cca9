"""The bank app with Bastion inside it: BastionMiddleware in front of `create_app`, no proxy.

Run it: `BANK_JWT_SECRET=$(openssl rand -base64 48) python -m examples.bank.asgi_app --port 9000`.
Tokens are HS256 JWTs signed with that secret, `iss` = `https://bank.example`, `aud` = `bank`,
`sub` = the customer id (`cus_alice0001`) and `scope` = `accounts:read transfers:write`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from bastion.asgi import BastionMiddleware
from examples.bank.app import create_app
from examples.bank.seed import seed

SPEC = Path(__file__).resolve().parent / "openapi.yaml"
ISSUER = "https://bank.example"
AUDIENCE = "bank"


def bank_config(jwt_secret: str, *, access_log: str = "stdout") -> dict[str, Any]:
    """The middleware config: the gateway's format without listeners or upstreams."""
    jwt = {"issuer": ISSUER, "audience": AUDIENCE, "secret": jwt_secret}
    return {
        "access_log": {"sink": access_log},
        "global_policies": {
            "request_id": {},
            "security_headers": {},
            "size_limit": {"max_body_bytes": 65536},
            "rate_limit": {
                "limit": 100,
                "window": 60,
                "key": ["ip"],
                "algorithm": "sliding_window",
            },
        },
        "services": [
            {"name": "probes", "routes": [{"name": "health", "paths": ["/healthz"]}]},
            {
                "name": "bank",
                "policies": {"jwt": jwt, "openapi": {"spec": str(SPEC)}},
                "routes": [
                    {
                        "name": "accounts",
                        "paths": ["/v1/accounts", "/v2/accounts"],
                        "methods": ["GET"],
                        "policies": {"scopes": {"required": ["accounts:read"]}},
                    },
                    {
                        "name": "transfers",
                        "paths": ["/v1/transfers", "/v2/transfers"],
                        "policies": {
                            "scopes": {
                                "required": ["accounts:read"],
                                "methods": {"POST": {"required": ["transfers:write"]}},
                            }
                        },
                    },
                ],
            },
        ],
    }


def create_protected_app(
    db_path: str | Path, jwt_secret: str, *, access_log: str = "stdout"
) -> Starlette:
    """The bank app wrapped in BastionMiddleware; requests matching no route get 404."""
    app = create_app(db_path)
    app.add_middleware(
        BastionMiddleware,
        config=bank_config(jwt_secret, access_log=access_log),
        unmatched="deny",
    )
    return app


def main(argv: list[str] | None = None) -> None:
    """Seed the database and serve the protected bank on uvicorn until interrupted."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m examples.bank.asgi_app")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=9000, help="port to bind (default: 9000)")
    parser.add_argument("--db", type=Path, default=Path("bank.db"), help="SQLite database file")
    args = parser.parse_args(argv)
    secret = os.environ.get("BANK_JWT_SECRET")
    if not secret:
        parser.error("set BANK_JWT_SECRET (at least 32 bytes) to verify HS256 tokens")
    seed(args.db)
    uvicorn.run(create_protected_app(args.db, secret), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
