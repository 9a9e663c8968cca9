"""Benchmark: CPU per request that authentication adds through the full proxy.

One Bastion process (pinned to one core) serves four routes to the same fixed nginx upstream:
`/none` (no authentication), `/key` (`api_key`, one hot key), `/jwt` (`jwt`, RS256, one token:
the verified-token cache answers) and `/jwt-miss` (the same policy with `cache_size: 0`, so every
request verifies the RS256 signature). wrk loads each route in interleaved rounds; the figure is
the Bastion process's CPU (utime + stime from /proc) per request, and the cost of a policy is its
route's figure minus `/none`'s from the same run.

    bash bench/run.sh --help                       # installs nginx and wrk if missing
    .venv/bin/python bench/auth_proxy.py [--quick] [--rounds N] [--duration S]

It reuses the pass-through harness (bench/passthrough.py) for processes, wrk and /proc sampling.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import RSAKey
from passthrough import (
    ADMIN_TOKEN,
    HOST,
    LOAD_CPU,
    PROXY_CPU,
    REPO_DIR,
    UPSTREAM_PORT,
    Bench,
    BenchError,
    Service,
    Settings,
    Summary,
    Target,
    host_info,
    pinned,
    port_free,
    summarize,
)

HTTP_PORT = 18086
ADMIN_PORT = 18904
ISSUER = "https://issuer.bench.invalid"
AUDIENCE = "bench-api"
PEPPER = "a-benchmark-pepper-of-at-least-32-characters"
KEY_HEADER = "x-api-key"

# No budget is judged here for the full proxy: DESIGN.md §5's per-check budgets (hit ≤ 2 µs,
# RS256 miss ≤ 60 µs) are for the policy alone (bench/api_key_cost.py, bench/jwt_verify.py);
# this run shows what a user pays end to end.


@dataclass(frozen=True, slots=True)
class AuthTarget(Target):
    """A route of the one Bastion process, with the header wrk sends."""

    path: str = "/none"
    header: str | None = None

    @property
    def url(self) -> str:
        """The URL wrk requests."""
        return f"{self.scheme}://{HOST}:{self.port}{self.path}"


class AuthBench(Bench):
    """The pass-through harness with per-target request headers."""

    def __init__(self, settings: Settings, workdir: Path, headers: dict[str, str]) -> None:
        super().__init__(settings, workdir)
        self.headers = headers

    def _wrk_argv(self, target: Target, duration: int) -> list[str]:
        argv = super()._wrk_argv(target, duration)
        header = self.headers.get(target.key)
        return argv if header is None else [*argv[:-1], "-H", header, argv[-1]]


def _rsa_token(workdir: Path) -> tuple[str, str]:
    """A fresh RS256 key: its public PEM and a token valid for a day."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = RSAKey.import_key(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bench", "iat": now, "exp": now + 86_400}
    token = jwt.encode({"alg": "RS256", "typ": "JWT"}, claims, key)
    return pem.decode(), token


def _config(workdir: Path, public_pem: str) -> Path:
    jwt_policy = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "algorithms": ["RS256"],
        "public_key_pem": public_pem,
    }
    config = {
        "listeners": [{"bind": f"{HOST}:{HTTP_PORT}", "plaintext": True}],
        "admin": {"bind": f"{HOST}:{ADMIN_PORT}", "token": ADMIN_TOKEN},
        "access_log": {"sink": "off"},
        "store": f"sqlite:///{workdir / 'bench.db'}",
        "pepper": PEPPER,
        "services": [
            {
                "name": "bench",
                "upstream": {"targets": [f"http://{HOST}:{UPSTREAM_PORT}"]},
                "routes": [
                    {"name": "none", "paths": ["/none"]},
                    {"name": "key", "paths": ["/key"], "policies": {"api_key": {}}},
                    {"name": "jwt", "paths": ["/jwt"], "policies": {"jwt": jwt_policy}},
                    {
                        "name": "jwt-miss",
                        "paths": ["/jwt-miss"],
                        "policies": {"jwt": {**jwt_policy, "cache_size": 0}},
                    },
                ],
            }
        ],
    }
    path = workdir / "auth.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def _issue_key(settings: Settings, config: Path) -> str:
    """Create a consumer and issue it a key through the CLI (the key is printed once)."""
    bastion = str(settings.bastion)
    subprocess.run(
        [bastion, "consumers", "add", "-c", str(config), "bench"],
        check=True,
        capture_output=True,
        cwd=REPO_DIR,
    )
    issued = subprocess.run(
        [bastion, "keys", "issue", "-c", str(config), "bench"],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO_DIR,
    )
    key = next((w for w in issued.stdout.split() if w.startswith("bst_")), None)
    if key is None:
        raise BenchError(f"`bastion keys issue` printed no key: {issued.stdout!r}")
    return key


def _parse_args(argv: Sequence[str] | None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round x 3 s")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--bastion", type=Path, default=REPO_DIR / ".venv" / "bin" / "bastion")
    parser.add_argument("--results-dir", type=Path, default=REPO_DIR / "bench" / "results")
    args = parser.parse_args(argv)
    rounds, duration = (1, 3) if args.quick else (args.rounds, args.duration)
    return Settings(
        duration=duration,
        rounds=rounds,
        connections=args.connections,
        threads=1,
        warmup=1 if args.quick else args.warmup,
        ready_timeout=15.0,
        only=(),
        bastion=args.bastion,
        results_dir=args.results_dir,
        keep_temp=False,
        pin=not args.no_pin,
    )


def _table(summaries: dict[str, Summary], targets: Sequence[AuthTarget], heading: str) -> str:
    base = summaries.get("none")
    lines = [
        heading,
        "",
        "| route | policy | req/s | p50 ms | p99 ms | CPU µs/req | added by the policy |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for t in targets:
        s = summaries.get(t.key)
        if s is None:
            lines.append(f"| `{t.path}` | {t.label} | — | — | — | — | not measured |")
            continue
        added = (
            "—"
            if base is None or t.key == "none"
            else f"+{s.cpu_us_per_request - base.cpu_us_per_request:.1f}"
        )
        lines.append(
            f"| `{t.path}` | {t.label} | {s.rps:,.0f} | {s.p50_ms:.2f} | {s.p99_ms:.2f} "
            f"| {s.cpu_us_per_request:.1f} | {added} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit 2 when the harness cannot run."""
    settings = _parse_args(argv)
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            print(
                f"bench: {tool} is missing; run `bash bench/run.sh` once to install it",
                file=sys.stderr,
            )
            return 2
    if not all(port_free(p) for p in (UPSTREAM_PORT, HTTP_PORT, ADMIN_PORT)):
        print("bench: a benchmark port is in use", file=sys.stderr)
        return 2
    started = dt.datetime.now(dt.UTC)
    workdir = Path(tempfile.mkdtemp(prefix="bastion-auth-bench-"))
    targets = [
        AuthTarget("none", "none", "http", HTTP_PORT, "bastion", "/none"),
        AuthTarget("key", "api_key", "http", HTTP_PORT, "bastion", "/key"),
        AuthTarget("jwt", "jwt RS256, cache hit", "http", HTTP_PORT, "bastion", "/jwt"),
        AuthTarget("jwt-miss", "jwt RS256, no cache", "http", HTTP_PORT, "bastion", "/jwt-miss"),
    ]
    bench: AuthBench | None = None
    try:
        public_pem, token = _rsa_token(workdir)
        config = _config(workdir, public_pem)
        key = _issue_key(settings, config)
        headers = {
            "key": f"{KEY_HEADER}: {key}",
            "jwt": f"authorization: Bearer {token}",
            "jwt-miss": f"authorization: Bearer {token}",
        }
        bench = AuthBench(settings, workdir, headers)
        bench.start_services([])  # the upstream only
        argv = [str(settings.bastion), "run", "-c", str(config)]
        service = Service("bastion", pinned(argv, PROXY_CPU, settings), workdir / "bastion.log")
        reason = bench._launch(service, bench._http_ok(ADMIN_PORT, "/ready"))
        if reason is not None:
            raise BenchError(f"bastion: {reason}")
        bench.warm_up(targets)
        results = bench.run_rounds(targets)
    except (BenchError, subprocess.CalledProcessError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    finally:
        if bench is not None:
            bench.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)

    summaries = {t.key: summarize(results[t.key], None) for t in targets if results[t.key]}
    host = host_info(settings)
    heading = (
        f"### Authentication through the full proxy, {started:%Y-%m-%d}: {settings.rounds} "
        f"round(s) of {settings.duration} s, {settings.connections} connections, HTTP\n\n"
        f"{host['cpu'] or 'unknown CPU'}, {host['cpus']} CPUs; Python {host['python']}"
        f"{'; commit ' + str(host['git_commit']) if host['git_commit'] else ''}. "
        + (
            f"Bastion on CPU {PROXY_CPU}; wrk and the upstream on CPU {LOAD_CPU}. "
            if settings.pin
            else ""
        )
        + "CPU = utime+stime of the Bastion process ÷ requests; medians of the rounds."
    )
    table = _table(summaries, targets, heading)
    settings.results_dir.mkdir(parents=True, exist_ok=True)
    out = settings.results_dir / f"auth-{started:%Y-%m-%d-%H%M%S}.json"
    out.write_text(
        json.dumps(
            {
                "host": host,
                "summaries": {k: asdict(v) for k, v in summaries.items()},
                "markdown": table,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    print()
    print(table)
    print(f"Raw results: {out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
