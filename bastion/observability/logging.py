"""Bastion's own diagnostic logs: ECS JSON lines through a sink, with secrets redacted first.

`redact()` is the one place that knows what a secret looks like in free text; the
`RedactingFilter` applies it to every record (message, arguments and traceback) before any
formatter or sink sees it, and the access log applies it to the query string and error text.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Final

import orjson

from bastion.observability.sinks import Sink, StdoutSink

ECS_VERSION: Final = "8.11.0"
REDACTED: Final = "[REDACTED]"

# Each rule keeps what helps debugging (the header name, the key id, the JWT header and
# payload) and replaces only the secret part. Rules run in this order, so a credential
# already masked as a header value is not seen again by the scheme rules. Every pattern runs
# in linear time (starts anchored by look-behinds or literals, repeats bounded or possessive),
# so a hostile string in a log message cannot make redaction quadratic.

# A sensitive header written as `Name: value` (masked to the end of the line) or with a quoted
# name and value, as in JSON or a repr: `"name": "value"`, `(b'name', b'value')`.
_HEADER = re.compile(
    r"(?i)(?<![a-z0-9-])(?P<name>(?:proxy-)?authorization|set-cookie|cookie|x-api-key|api-key)"
    r"(?:(?P<qsep>[\"'][ \t]*[:,=][ \t]*)(?P<open>b?(?P<q>[\"']))"
    r"(?>(?:\\.|(?!(?P=q))[^\\\r\n])*+(?P=q)?)"
    r"|(?P<sep>[\"']?[ \t]*[:=][ \t]*)[^\r\n]+)"
)
# An HTTP authentication scheme followed by its credentials (anything up to a delimiter),
# unless what follows is an auth-param (`Bearer realm="api"`, `token_type=bearer expires_in=900`):
# a token68 credential never has `=` before its end.
_SCHEME = re.compile(
    r"(?i)(?<![a-z0-9])(?P<scheme>bearer|basic)(?P<sep>[ \t]++)"
    r"(?!(?:realm|charset|scope|error|error_description|error_uri)="
    r"|[a-z0-9._~+/-]+=+[^=\s\"',;)\]}]"
    r"|(?:bearer|basic)[ \t]+[^\s\"',;])"  # `BEARER Bearer tok`: mask tok, not the word
    r"[^\s\"',;]+"
)
# Bastion API keys: `bst_<id>_<43 base64url chars>`; the id is a lookup handle, not a secret.
_API_KEY = re.compile(r"(?<![A-Za-z0-9])(?P<keep>bst_[A-Za-z0-9-]{1,32}?_)[A-Za-z0-9_-]{32,}+")
# Compact JWS: base64url header (always `{"` → `eyJ`), payload, signature.
_JWT = re.compile(
    r"(?<![A-Za-z0-9_-])(?P<keep>eyJ[A-Za-z0-9_-]*+\.[A-Za-z0-9_-]++\.)[A-Za-z0-9_-]++"
)
# `password=...`, `"client_secret": "..."`, `refresh_token: ...` and similar pairs. When a
# quoted value is itself followed by `:` or `=` (`"password": "password": "x"`), the chain is
# masked whole, since the real value is further on.
_PAIR = re.compile(
    r"(?i)(?P<key>password|passwd|pwd|secret|token|api[_-]?key|signature)"  # `db_password` too
    r"(?P<sep>[\"']?[ \t]*[:=][ \t]*)"
    r"(?:(?P<q>[\"'])(?:\\.|(?!(?P=q))[^\\\r\n])*+(?P=q)?"
    r"(?:[ \t]*[:=][ \t]*(?:\"(?:\\.|[^\"\\\r\n])*+\"?|'(?:\\.|[^'\\\r\n])*+'?|[^\s&,;\"']+))*+"
    r"|(?![\"'])[^\s&,;]+)"
)


_SCHEME_REPL: Final = rf"\g<scheme>\g<sep>{REDACTED}"
_KEEP_REPL: Final = rf"\g<keep>{REDACTED}"
_PAIR_HINTS: Final = re.compile(r"pass|pwd|secret|token|key|signature")


def _header(match: re.Match[str]) -> str:
    if match["q"]:
        return f"{match['name']}{match['qsep']}{match['open']}{REDACTED}{match['q']}"
    return f"{match['name']}{match['sep']}{REDACTED}"


def _pair(match: re.Match[str]) -> str:
    quote = match["q"] or ""
    return f"{match['key']}{match['sep']}{quote}{REDACTED}{quote}"


def redact(text: str) -> str:
    """Return `text` with credentials replaced by `[REDACTED]`.

    Masked: values of `Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie` and
    API-key headers; `Bearer`/`Basic` credentials; Bastion API keys (the `bst_<id>_` prefix is
    kept); JWT signatures (header and payload are kept); values of `password=`, `secret=`,
    `*token=`, `api_key=` and similar pairs, quoted or not. Errs on the side of masking: the
    word after "Basic" or "Bearer" in prose is masked too.
    """
    # Substring checks (a few ns each) skip the regexes that cannot match: most log
    # messages and query strings hold no credential at all.
    low = text.lower()
    if "authorization" in low or "cookie" in low or "api-key" in low:
        text = _HEADER.sub(_header, text)
    if "bearer" in low or "basic" in low:
        text = _SCHEME.sub(_SCHEME_REPL, text)
    if "bst_" in text:
        text = _API_KEY.sub(_KEEP_REPL, text)
    if "eyJ" in text:
        text = _JWT.sub(_KEEP_REPL, text)
    if _PAIR_HINTS.search(low):
        text = _PAIR.sub(_pair, text)
    return text


def _redact_value(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {str(k): _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """Rewrites each record so that no formatter or sink sees a secret.

    The message is rendered (`msg % args`) and redacted, the exception text is rendered and
    redacted, and structured `ecs_fields` (see `ECSFormatter`) are redacted value by value.
    Attach it to a handler, not a logger, so that it also sees records from child loggers.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact `record` in place; never drops it."""
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        fields = getattr(record, "ecs_fields", None)
        if isinstance(fields, Mapping):
            record.ecs_fields = _redact_value(fields)
        return True


_RESERVED = frozenset({"@timestamp", "message", "log", "ecs"})


def _iso_utc(seconds: float) -> str:
    whole, micros = divmod(round(seconds * 1_000_000), 1_000_000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(whole))}.{micros // 1000:03d}Z"


class ECSFormatter(logging.Formatter):
    """Formats a record as one ECS JSON object (without the trailing newline).

    Fields: `@timestamp` (the record's creation time, UTC, milliseconds), `ecs.version`,
    `log.level`, `log.logger`, `log.origin`, `message`, `process.pid`, `service.name`, and
    for exceptions `error.type`, `error.message` and `error.stack_trace`. A record may carry
    extra ECS fields as `extra={"ecs_fields": {"event": {...}, "user": {"id": ...}}}`; they
    are merged at the top level, but cannot replace the fields above.
    """

    def __init__(self, service_name: str = "bastion") -> None:
        super().__init__()
        self._service = {"name": service_name}
        self._ecs = {"version": ECS_VERSION}

    def format(self, record: logging.LogRecord) -> str:
        """Return the JSON text of `record`."""
        doc: dict[str, object] = {
            "@timestamp": _iso_utc(record.created),
            "ecs": self._ecs,
            "log": {
                "level": record.levelname.lower(),
                "logger": record.name,
                "origin": {
                    "file": {"name": record.filename, "line": record.lineno},
                    "function": record.funcName,
                },
            },
            "message": record.getMessage(),
            "process": {"pid": record.process},
            "service": self._service,
        }
        if record.exc_info:
            exc = record.exc_info[1]
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
            error: dict[str, object] = {"stack_trace": record.exc_text}
            if exc is not None:
                error["type"] = type(exc).__qualname__
                error["message"] = redact(str(exc))
            doc["error"] = error
        elif record.exc_text:
            doc["error"] = {"stack_trace": record.exc_text}
        if record.stack_info:
            doc.setdefault("error", {"stack_trace": record.stack_info})
        fields = getattr(record, "ecs_fields", None)
        if isinstance(fields, Mapping):
            for key, value in fields.items():
                if key not in _RESERVED and key not in doc:
                    doc[str(key)] = value
        return orjson.dumps(doc, default=str).decode()


class SinkHandler(logging.Handler):
    """A logging handler that writes each formatted record as one line to a `Sink`.

    Every record is flushed to the sink's writer at once: diagnostic logs are few, and a
    crash must not lose the lines just before it.

    Args:
        sink: Where the lines go.
        owns_sink: Whether `close()` closes the sink (else it only flushes it).
    """

    def __init__(self, sink: Sink, *, owns_sink: bool = True) -> None:
        super().__init__()
        self.sink = sink
        self.owns_sink = owns_sink

    def emit(self, record: logging.LogRecord) -> None:
        """Format `record` and hand it to the sink."""
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001  # logging's contract: report via handleError, never raise
            self.handleError(record)
            return
        self.sink.write(line.encode("utf-8", "backslashreplace") + b"\n")
        self.sink.flush()

    def flush(self) -> None:
        """Hand buffered lines to the sink's output."""
        self.sink.flush()

    def close(self) -> None:
        """Close the sink if this handler owns it, else flush it."""
        try:
            if self.owns_sink:
                self.sink.close()
            else:
                self.sink.flush()
        finally:
            super().close()


_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(
    level: str = "info", json: bool = True, sink: Sink | None = None
) -> SinkHandler:
    """Route the process's stdlib logging to `sink` as redacted ECS JSON (or plain text) lines.

    Installs one `SinkHandler` with a `RedactingFilter` on the root logger (so asyncio's and
    libraries' errors are captured too), replacing any handler a previous call installed.
    Without `sink`, lines go to standard error; that sink is then closed by
    `logging.shutdown()` at exit, while a caller's sink is only flushed.

    Args:
        level: `debug`, `info`, `warning`, `error` or `critical` (any case).
        json: ECS JSON lines when true, `time LEVEL logger: message` text otherwise.
        sink: Destination of the lines.

    Returns:
        The installed handler.

    Raises:
        ValueError: Unknown level.
    """
    try:
        numeric = _LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(_LEVELS)}") from None
    handler = SinkHandler(sink or StdoutSink(2), owns_sink=sink is None)
    handler.addFilter(RedactingFilter())
    if json:
        handler.setFormatter(ECSFormatter())
    else:
        text = logging.Formatter(_TEXT_FORMAT)
        text.converter = time.gmtime
        handler.setFormatter(text)
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, SinkHandler):
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    root.setLevel(numeric)
    return handler
