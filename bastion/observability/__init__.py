"""Observability: the ECS access log, redacted diagnostic logging and the sinks they write to."""

from bastion.observability.access_log import AccessLog, redact_query
from bastion.observability.logging import RedactingFilter, configure_logging, redact
from bastion.observability.sinks import FileSink, MemorySink, Sink, StdoutSink, open_sink

__all__ = [
    "AccessLog",
    "FileSink",
    "MemorySink",
    "RedactingFilter",
    "Sink",
    "StdoutSink",
    "configure_logging",
    "open_sink",
    "redact",
    "redact_query",
]
