"""Run the banking example on uvicorn: `python -m examples.bank --port 9000 --db bank.db`."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from examples.bank.app import create_app
from examples.bank.seed import link_identity, seed


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
    parser.add_argument(
        "--link",
        action="append",
        default=[],
        metavar="SUBJECT=CUSTOMER",
        help="let a gateway identity (X-Bastion-Consumer) act as a customer (repeatable)",
    )
    args = parser.parse_args(argv)
    links = []
    for item in args.link:
        subject, eq, customer = item.partition("=")
        if not eq or not subject or not customer:
            parser.error(f"--link expects SUBJECT=CUSTOMER, got {item!r}")
        links.append((subject, customer))
    seed(args.db)  # writes the demo data only if it is not there yet
    for subject, customer in links:
        try:
            link_identity(args.db, subject, customer)
        except ValueError as exc:
            parser.error(str(exc))
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
