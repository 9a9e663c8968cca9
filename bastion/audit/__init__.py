"""`bastion audit`: a static, value-aware security review of a gateway configuration."""

from bastion.audit.model import SEVERITIES, Finding, Rule, Severity, at_or_above
from bastion.audit.rules import RULES, audit_document
from bastion.audit.source import AuditSource, load_source, source_from_text

__all__ = [
    "RULES",
    "SEVERITIES",
    "AuditSource",
    "Finding",
    "Rule",
    "Severity",
    "at_or_above",
    "audit_document",
    "load_source",
    "source_from_text",
]
