"""The injection rule set: versioned, documented patterns matched in linear time, sans-IO.

How this works: each `Rule` is a regular expression built only from bounded repetitions
(`{0,N}`) and character classes, with no nested unbounded quantifier, so a search costs at most
O(length x rule size) on any input: no catastrophic backtracking. All enabled rules are joined
into one alternation per location class (one `search` per string), whose named group tells
which rule fired. Text is normalised before matching: percent-escapes decoded twice, HTML
entities decoded, SQL inline comments replaced by a space, lower-cased.

Bump `RULESET_VERSION` on every change to a pattern; docs/validation.md lists the rules.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

RULESET_VERSION = "1.0.0"

Category = Literal["sqli", "xss", "traversal", "cmdi", "nosql", "crlf", "ssrf"]
CATEGORIES: tuple[Category, ...] = ("sqli", "xss", "traversal", "cmdi", "nosql", "crlf", "ssrf")
MAX_SCAN = 64 * 1024
"""Characters of one string scanned (longer strings are scanned in their first 64 KiB)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One detection pattern; `body` false keeps it off free-text bodies (CRLF)."""

    id: str
    category: Category
    description: str
    pattern: str
    body: bool = True


_CMDS = (
    r"(?:cat|ls|id|whoami|uname|wget|curl|nc|ncat|netcat|bash|sh|zsh|python(?:[23](?:\.[0-9]{1,2})?)?|perl"
    r"|ruby|php|ping|nslookup|rm|chmod|chown|powershell|cmd(?:\.exe)?|echo|sleep|env|printenv"
    r"|ifconfig|ipconfig|net|telnet|busybox|base64|xterm)"
)
_NOSQL_OPS = (
    r"(?:where|ne|eq|gt|gte|lt|lte|in|nin|regex|or|and|not|nor|exists|expr|elemmatch"
    r"|function|accumulator|type|size|all|mod|text|jsonschema)"
)
_PRIVATE_HOST = (
    r"(?:localhost|localtest\.me|127(?:\.[0-9]{1,3}){1,3}|0\.0\.0\.0|0{1,8}"
    r"|10\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}|192\.168\.[0-9]{1,3}\.[0-9]{1,3}"
    r"|172\.(?:1[6-9]|2[0-9]|3[01])\.[0-9]{1,3}\.[0-9]{1,3}|169\.254\.[0-9]{1,3}\.[0-9]{1,3}"
    r"|metadata\.google\.internal|metadata|instance-data|[0-9]{8,10}|0x[0-9a-f]{1,8}"
    r"|0[0-7]{1,3}\.[0-9]{1,4}[0-9.]{0,8}|\[[0-9a-f:.]{0,45}\])"
)

RULES: tuple[Rule, ...] = (
    Rule(
        "sqli-union-select",
        "sqli",
        "UNION [ALL] SELECT",
        r"\bunion[\s(]{1,20}(?:all[\s(]{1,20}|distinct[\s(]{1,20})?select\b",
    ),
    Rule(
        "sqli-tautology",
        "sqli",
        "a quote closing a literal, then OR/AND and a comparison: ' OR 1=1, ' or 'a'='a",
        r"['\"`)]\s{0,5}(?:or|and|xor|\|\||&&)\s{0,5}[('\"`]{0,2}[\w@.-]{0,30}[)'\"`]{0,2}"
        r"\s{0,5}(?:=|<>|!=|<|>|\blike\b|\bis\b|\bin\b)",
    ),
    Rule(
        "sqli-numeric-tautology",
        "sqli",
        "OR/AND followed by a numeric comparison: 1 OR 1=1",
        r"\b(?:or|and)\s{1,5}[0-9]{1,10}\s{0,5}(?:=|<>|!=)\s{0,5}[0-9]{1,10}\b"
        r"|\b(?:or|and)\s{1,5}[0-9]{1,10}[<>][0-9]{1,10}\b",
    ),
    Rule(
        "sqli-comment-terminator",
        "sqli",
        "a quote or parenthesis followed by a comment that cuts the rest of the query",
        r"['\"`]\)?;?--(?:\s|$|[-+])|['\"`]\s{0,5}\)?\s{0,5};?\s{0,5}(?:#|/\*)",
    ),
    Rule(
        "sqli-stacked-query",
        "sqli",
        "a statement separator followed by a data or schema changing statement",
        r";\s{0,5}(?:drop\s{1,5}(?:table|database|schema|user)|delete\s{1,5}from|insert\s{1,5}into"
        r"|update\s{1,5}[\w.\"`\[\]]{1,64}\s{1,5}set\b|truncate\s{1,5}table|shutdown\b"
        r"|exec(?:ute)?\s{1,5}\w|declare\s{1,5}@|select\s[^;]{0,200}\bfrom\b|alter\s{1,5}table"
        r"|create\s{1,5}(?:table|user|function))",
    ),
    Rule(
        "sqli-functions",
        "sqli",
        "time delays, file access and catalogue reads used by blind and out-of-band SQLi",
        r"\b(?:sleep|pg_sleep|benchmark)\s{0,5}\(\s{0,5}[0-9]|\bwaitfor\s{1,5}delay\b"
        r"|\bload_file\s{0,5}\(|\binto\s{1,5}(?:out|dump)file\b|\binformation_schema\b"
        r"|\bxp_cmdshell\b|\b(?:extractvalue|updatexml)\s{0,5}\(|\bsys\.(?:user_)?objects\b"
        r"|\bdbms_pipe\.|\butl_http\.|@@version\b|\bchar\s{0,3}\(\s{0,3}[0-9]{1,3}\s{0,3},"
        r"|\bconcat\s{0,3}\(\s{0,3}0x[0-9a-f]",
    ),
    Rule(
        "sqli-quoted-select",
        "sqli",
        "a quote closing a literal followed by a SELECT or a stacked statement",
        r"['\"`]\s{0,5}[);]{0,3}\s{0,5}(?:and|or|union|;)?\s{0,5}\(?\s{0,5}select\s[^'\"]{0,200}"
        r"\bfrom\b",
    ),
    Rule(
        "xss-script-tag",
        "xss",
        "a <script> element",
        r"<\s{0,5}/?\s{0,5}script\b",
    ),
    Rule(
        "xss-event-handler",
        "xss",
        "an HTML tag with an on* event handler attribute",
        r"<[a-z!][^>]{0,300}[\s/\"'`]on[a-z]{3,25}\s{0,5}=",
    ),
    Rule(
        "xss-attribute-breakout",
        "xss",
        "a quote leaving an attribute to add an event handler or a new tag",
        r"['\"`]\s{0,5}(?:/|\s)\s{0,5}on[a-z]{3,25}\s{0,5}=|['\"`]\s{0,5}>\s{0,5}<\s{0,5}[a-z]",
    ),
    Rule(
        "xss-script-uri",
        "xss",
        "javascript:, vbscript: or data:text/html URLs",
        r"(?:java|vb|live)script\s{0,5}:|data\s{0,5}:\s{0,5}text/html",
    ),
    Rule(
        "xss-active-element",
        "xss",
        "elements that load or run active content",
        r"<\s{0,5}(?:iframe|frame|frameset|object|embed|applet|base|meta\s[^>]{0,100}refresh"
        r"|svg[\s/>]|math[\s/>]|link\s[^>]{0,100}import|form\s[^>]{0,100}action)",
    ),
    Rule(
        "xss-dom-sinks",
        "xss",
        "script expressions reading cookies or writing the document",
        r"document\s{0,3}\.\s{0,3}(?:cookie|domain|write\s{0,3}\()|\bexpression\s{0,3}\("
        r"|\b(?:alert|prompt|confirm)\s{0,3}(?:\(\s{0,3}(?:[0-9]|document|window|`)|`)"
        r"|\bstring\.fromcharcode\s{0,3}\(|\beval\s{0,3}\(\s{0,3}(?:atob|unescape|string)",
    ),
    Rule(
        "traversal-dot-dot",
        "traversal",
        "../, ..\\ and ..;/ segments (also overlong UTF-8 slashes, decoded as U+FFFD)",
        r"(?:^|[\\/=:'\"])\.{2,4}[\\/]|[\\/]\.{2,4}(?:[\\/]|$)|\.\.;[\\/]|\.\.\ufffd",
    ),
    Rule(
        "traversal-sensitive-file",
        "traversal",
        "well-known sensitive system files",
        r"/etc/(?:passwd|shadow|group|hosts|issue)\b|\b[a-z]:\\+windows\\|\bboot\.ini\b"
        r"|\bwin\.ini\b|/proc/self/|\.ssh/(?:id_|authorized_keys)|\bweb-inf/web\.xml",
    ),
    Rule(
        "traversal-nul-byte",
        "traversal",
        "a NUL character, used to cut a file name",
        r"\x00",
    ),
    Rule(
        "cmdi-separator-command",
        "cmdi",
        "a shell separator or substitution followed by a common command",
        r"(?:[;&|\n`]|\$\()\s{0,5}" + _CMDS + r"(?:\s{1,5}(?:-|/|\$|https?:|[0-9]|\\|~)|\s{0,5}"
        r"(?:$|[;&|`)])|\s{1,5}[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63}){0,5}\.[a-z]{2,10}\b)",
    ),
    Rule(
        "cmdi-substitution",
        "cmdi",
        "$(command), ${IFS} and similar shell expansions",
        r"\$\(\s{0,5}" + _CMDS + r"\b|\$\{\s{0,3}ifs\s{0,3}\}|\$ifs\b|\$\{\s{0,3}path:[0-9]",
    ),
    Rule(
        "cmdi-reverse-shell",
        "cmdi",
        "reverse-shell idioms",
        r"/dev/(?:tcp|udp)/|\bnc(?:at)?\s{1,5}-[a-z]{0,4}e\s|\bbash\s{1,5}-i\b|\bmkfifo\s",
    ),
    Rule(
        "nosql-operator",
        "nosql",
        "MongoDB query operators as a key or a bracketed parameter name",
        r"(?:^|\[)\s{0,3}\$" + _NOSQL_OPS + r"\s{0,3}(?:\]|$)|\$where\b"
        r"|['\"]\s{0,3}\$" + _NOSQL_OPS + r"['\"]\s{0,3}:",
    ),
    Rule(
        "crlf-injection",
        "crlf",
        "CR or LF in a path, query or header value (response splitting, header injection), also"
        " as U+560A/U+560D, which some servers truncate to LF/CR",
        r"[\r\n\u560a\u560d]",
        body=False,
    ),
    Rule(
        "ssrf-internal-url",
        "ssrf",
        "URLs naming loopback, private, link-local or cloud metadata hosts",
        r"\b[a-z][a-z0-9+.-]{1,15}://(?:[^/@\s?#]{0,100}@)?" + _PRIVATE_HOST + r"(?:[:/?#\\]|$)",
    ),
    Rule(
        "ssrf-dangerous-scheme",
        "ssrf",
        "URL schemes that reach local files or raw sockets",
        r"\b(?:file|gopher|dict|ldap|tftp|jar|netdoc|phar|expect)://",
    ),
)

_COMMENT = re.compile(r"/\*[^*]{0,200}\*/")


def normalise(text: str) -> str:
    """The form rules match: escapes decoded twice, entities decoded, comments out, lower-case."""
    if len(text) > MAX_SCAN:
        text = text[:MAX_SCAN]
    for _ in range(2):
        if "%" not in text:
            break
        text = unquote(text, errors="replace")
    if "&" in text:
        text = html.unescape(text)
    if "/*" in text:
        text = _COMMENT.sub(" ", text)
    return text.lower()


@dataclass(frozen=True, slots=True)
class Matcher:
    """Enabled rules compiled into one alternation for non-body and one for body strings."""

    rules: tuple[Rule, ...]
    _head: re.Pattern[str] | None
    _body: re.Pattern[str] | None

    @classmethod
    def build(cls, rules: tuple[Rule, ...]) -> Matcher:
        """Compile `rules`."""

        def joined(chosen: list[Rule]) -> re.Pattern[str] | None:
            if not chosen:
                return None
            parts = [f"(?P<r{RULES.index(rule)}>{rule.pattern})" for rule in chosen]
            return re.compile("|".join(parts))

        return cls(rules, joined(list(rules)), joined([rule for rule in rules if rule.body]))

    def find(self, text: str, *, body: bool) -> Rule | None:
        """The first rule matching the normalised `text`, if any."""
        pattern = self._body if body else self._head
        if pattern is None or not text:
            return None
        match = pattern.search(normalise(text))
        if match is None or match.lastgroup is None:
            return None
        return RULES[int(match.lastgroup[1:])]


def select(categories: list[Category], exclude_rules: list[str]) -> tuple[Rule, ...]:
    """The rules of `categories`, minus the rule ids in `exclude_rules`."""
    return tuple(
        rule for rule in RULES if rule.category in categories and rule.id not in exclude_rules
    )
