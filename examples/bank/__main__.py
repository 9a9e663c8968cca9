"""Run the banking example on uvicorn: `python -m examples.bank --port 9000 --db bank.db`."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from examples.bank.app import create_app
from examples.bank.seed import seed


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, seed an empty database and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.bank",
        description="Serve the banking example API (intentionally without its own security:"
        " run it behind Bastion).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=9000, help="port to bind (default: 9000)")
    parser.add_argument("--db", type=Path, default=Path("bank.db"), help="SQLite database file")
    args = parser.parse_args(argv)
    seed(args.db)  # writes the demo data only if it is not there yet
    uvicorn.run(
        create_app(args.db),
        host=args.host,
        port=args.port,
        log_level="info",
        # The gateway in front sets X-Forwarded-*; the app has no use for them.
        proxy_headers=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
