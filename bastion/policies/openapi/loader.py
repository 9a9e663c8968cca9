"""Reads an OpenAPI document from disk, bundles its file references and checks it.

How this works: the root document is parsed (YAML through CSafeLoader, or JSON); every `$ref`
is then visited. References inside the root (`#/...`) stay as they are. A reference to another
file (`schemas.yaml#/Pet`, relative to the referring file) is replaced by the content it points
at, whose own references are resolved against that file in turn, so the result is one
self-contained document whose remaining references are all local. Remote references (any URL
with a scheme) are refused. The bundled document is then checked with openapi-spec-validator;
its first error is reported with the location inside the document.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
import yaml

MAX_SPEC_BYTES = 16 * 1024 * 1024
"""Largest spec file read (a guard against pointing the config at the wrong file)."""

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class SpecError(ValueError):
    """The OpenAPI document cannot be used; the message names the file and location."""


def _read(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror})") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"{path}: larger than {MAX_SPEC_BYTES} bytes")
    if path.suffix.lower() == ".json":
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise SpecError(f"{path}: invalid JSON ({exc})") from None
    try:
        return yaml.load(raw, Loader=_Loader)  # noqa: S506 - CSafeLoader/SafeLoader only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise SpecError(f"{path}: {where}: {problem}") from None


def _pointer(document: Any, fragment: str, where: str) -> Any:
    """Follow a JSON pointer (RFC 6901) from `document`."""
    node = document
    if not fragment:
        return node
    if not fragment.startswith("/"):
        raise SpecError(f"{where}: only JSON pointer fragments are supported")
    for raw in fragment[1:].split("/"):
        token = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise SpecError(f"{where}: reference target #{fragment} does not exist")
    return node


class _Bundler:
    """Inlines file references; keeps the root document's own `#/...` references."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.files: dict[Path, Any] = {}
        self.active: set[tuple[Path, str]] = set()

    def document(self, path: Path) -> Any:
        found = self.files.get(path)
        if found is None:
            found = self.files[path] = _read(path)
        return found

    def walk(self, node: Any, current: Path, location: str) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                return self.reference(node, ref, current, location)
            return {
                key: self.walk(value, current, f"{location}/{key}") for key, value in node.items()
            }
        if isinstance(node, list):
            return [self.walk(item, current, f"{location}/{i}") for i, item in enumerate(node)]
        return node

    def reference(self, node: dict[str, Any], ref: str, current: Path, location: str) -> Any:
        where = f"{current.name}#{location}"
        parts = urlsplit(ref)
        if parts.scheme or parts.netloc:
            raise SpecError(f"{where}: remote reference {ref!r} refused (bundle it into a file)")
        target = current
        if parts.path:
            target = (current.parent / unquote(parts.path)).resolve()
        fragment = unquote(parts.fragment)
        if target == self.root:
            # A reference into the root document stays a local reference.
            siblings = {
                key: self.walk(value, current, f"{location}/{key}")
                for key, value in node.items()
                if key != "$ref"
            }
            return {"$ref": "#" + parts.fragment, **siblings}
        key = (target, fragment)
        if key in self.active:
            raise SpecError(f"{where}: recursive reference {ref!r} across files is not supported")
        self.active.add(key)
        try:
            content = _pointer(self.document(target), fragment, where)
            inlined = self.walk(content, target, fragment)
        finally:
            self.active.discard(key)
        if isinstance(inlined, dict):
            extra = {k: v for k, v in node.items() if k != "$ref"}
            if extra:
                return {**inlined, **self.walk(extra, current, location)}
        return inlined


def _check(document: dict[str, Any], path: Path) -> None:
    """Validate against the OpenAPI 3.0 or 3.1 meta-schema; raise on the first error."""
    # Imported here: the validator (and its jsonschema stack) is needed only at load time.
    from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator

    version = str(document.get("openapi", ""))
    validator_cls: type[OpenAPIV30SpecValidator] | type[OpenAPIV31SpecValidator]
    if version.startswith("3.0."):
        validator_cls = OpenAPIV30SpecValidator
    elif version.startswith("3.1."):
        validator_cls = OpenAPIV31SpecValidator
    else:
        raise SpecError(f"{path}: openapi version {version!r} is not 3.0.x or 3.1.x")
    for error in validator_cls(document).iter_errors():
        where = "/".join(str(part) for part in getattr(error, "absolute_path", ()))
        message = getattr(error, "message", str(error))
        raise SpecError(f"{path}: at #/{where}: {message}")


def load_spec(path: Path, *, check: bool = True) -> dict[str, Any]:
    """Read, bundle and (unless `check` is false) validate the OpenAPI document at `path`.

    Raises:
        SpecError: the file cannot be read or parsed, a reference is remote, missing or
            recursive across files, or the document is not a valid OpenAPI 3.0/3.1 document.
    """
    bundler = _Bundler(path)
    raw = bundler.document(bundler.root)
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: an OpenAPI document must be a mapping")
    document = bundler.walk(raw, bundler.root, "")
    if check:
        _check(document, path)
    return document  # type: ignore[no-any-return]  # walk() keeps the mapping a mapping
