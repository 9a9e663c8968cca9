"""Write requirements.lock: every installed dependency of Bastion pinned, with sha256 hashes.

How this works: the dependency closure of pyproject.toml (runtime, and the `dev`, `redis`,
`postgres` and `demo` extras) is walked through the packages installed in this interpreter,
so the pins are exactly what `.venv` runs (`pip freeze` limited to Bastion's own tree, without
tools installed next to it). pip then resolves those exact pins against the configured index
without installing anything (`pip install --dry-run --report`) and reports the sha256 of each
archive it would fetch. The hashes are those of the wheels for this platform and Python; use
the file with `pip install --require-hashes -r requirements.lock` on the same platform.

Usage: .venv/bin/python scripts/lock_deps.py [OUTPUT]   (default: requirements.lock)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ("dev", "redis", "postgres", "demo")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _wanted(raw: str, extras: set[str]) -> Requirement | None:
    requirement = Requirement(raw)
    if requirement.marker is None:
        return requirement
    environments = [{"extra": extra} for extra in sorted(extras or {""})]
    return requirement if any(requirement.marker.evaluate(e) for e in environments) else None


def closure() -> dict[str, str]:
    """Installed name → version for every package Bastion's pyproject.toml pulls in."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    own = _norm(project["name"])
    roots = list(project["dependencies"])
    for extra in EXTRAS:
        roots += project.get("optional-dependencies", {}).get(extra, [])
    todo = [Requirement(raw) for raw in roots]
    seen: dict[str, set[str]] = {}
    pins: dict[str, str] = {}
    while todo:
        requirement = todo.pop()
        name = _norm(requirement.name)
        if name == own:
            continue  # the project's own extras are already in `roots`
        extras = set(requirement.extras)
        if name in seen and extras <= seen[name]:
            continue
        seen[name] = seen.get(name, set()) | extras
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue  # not for this platform, or not installed: nothing to pin
        pins[name] = dist.version
        for raw in dist.requires or []:
            wanted = _wanted(raw, extras)
            if wanted is not None:
                todo.append(wanted)
    return dict(sorted(pins.items()))


def hashes(pins: dict[str, str]) -> dict[str, str]:
    """sha256 of the archive pip would install for each exact pin (nothing is installed)."""
    with tempfile.TemporaryDirectory() as folder:
        requirements = Path(folder, "pins.txt")
        requirements.write_text("".join(f"{n}=={v}\n" for n, v in pins.items()))
        report = Path(folder, "report.json")
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--dry-run",
            "--ignore-installed",
            "--no-deps",
            "--report",
            str(report),
            "-r",
            str(requirements),
        ]
        subprocess.run(command, check=True)  # noqa: S603 - a fixed argument list
        installs = json.loads(report.read_text())["install"]
    found = {}
    for item in installs:
        digests = item["download_info"].get("archive_info", {}).get("hashes", {})
        if "sha256" in digests:
            found[_norm(item["metadata"]["name"])] = digests["sha256"]
    return found


def main() -> int:
    """Write the lock file; exit 1 if a pin has no hash."""
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "requirements.lock"
    pins = closure()
    digests = hashes(pins)
    lines = [
        "# Bastion's dependencies as installed in .venv, pinned with sha256 hashes.",
        "# Regenerate: make lock   Check for known vulnerabilities: make audit-deps",
        "# Install: pip install --require-hashes -r requirements.lock (same platform/Python).",
    ]
    missing = []
    for name, version in pins.items():
        if name not in digests:
            missing.append(name)
            continue
        lines.append(f"{name}=={version} \\\n    --hash=sha256:{digests[name]}")
    output.write_text("\n".join(lines) + "\n")
    if missing:
        sys.stderr.write(f"no hash found for: {', '.join(missing)}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
