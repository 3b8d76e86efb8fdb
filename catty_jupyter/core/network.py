"""Network policy: which hosts a session may reach, by level and allowlist.

Levels (SPEC, Environment): `none` (loopback only), `trusted` (the built-in list of package
registries and source hosts in `trusted_domains.txt`), `full` (anything), `custom` (the
environment's `allowed_domains`, plus the trusted list with `include_defaults`). The egress proxy
asks `NetworkPolicy.allows` for every connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

NETWORK_LEVELS: tuple[str, ...] = ("none", "trusted", "full", "custom")
"""The network levels an environment can have."""

TRUSTED_DOMAINS_FILE = Path(__file__).with_name("trusted_domains.txt")

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOST = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")


class BadDomain(ValueError):
    """An allowlist entry that is not a host name or a `*.` wildcard."""


def normalize_pattern(pattern: str) -> str:
    """An allowlist entry in canonical form (lower case, no trailing dot), or BadDomain.

    `example.com` matches that host only; `*.example.com` matches its subdomains. Schemes, paths,
    ports and wildcards anywhere but the front are refused, with a message saying what to write.
    """
    text = pattern.strip().lower().rstrip(".")
    host = text[2:] if text.startswith("*.") else text
    if "://" in text or "/" in text or ":" in text:
        raise BadDomain(f"{pattern!r}: write a host name only, like 'example.com' (no scheme, "
                        "port or path)")  # fmt: skip
    if "*" in host:
        raise BadDomain(f"{pattern!r}: a wildcard may only start the name, as in '*.example.com'")
    if not _HOST.match(host) or len(host) > 253:
        raise BadDomain(f"{pattern!r} is not a host name")
    if text.startswith("*.") and "." not in host:
        raise BadDomain(f"{pattern!r} would allow a whole top-level domain; name the domain, "
                        "as in '*.example.com'")  # fmt: skip
    return text


@cache
def trusted_domains() -> tuple[str, ...]:
    """The built-in allowlist of the `trusted` level."""
    lines = TRUSTED_DOMAINS_FILE.read_text().splitlines()
    return tuple(
        normalize_pattern(line) for line in lines if line.strip() and not line.startswith("#")
    )


def matches(host: str, pattern: str) -> bool:
    """True when HOST is PATTERN, or a subdomain of it when PATTERN starts with `*.`."""
    host = host.lower().rstrip(".")
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


@dataclass(frozen=True)
class NetworkPolicy:
    """What one session may reach beyond its own loopback."""

    level: str = "none"
    allowed_domains: tuple[str, ...] = ()
    include_defaults: bool = False
    always_allowed: tuple[str, ...] = ()
    """Hosts every level but `none` reaches, whatever the list says (the model endpoint)."""

    def __post_init__(self) -> None:
        if self.level not in NETWORK_LEVELS:
            raise ValueError(
                f"network must be one of {', '.join(NETWORK_LEVELS)}, not {self.level!r}"
            )
        # Hosts from URLs may carry capitals or a trailing dot; patterns are compared canonical.
        canonical = tuple(h.lower().rstrip(".") for h in self.always_allowed if h)
        object.__setattr__(self, "always_allowed", canonical)

    @property
    def uses_proxy(self) -> bool:
        """True when traffic leaves the sandbox through the egress proxy (every level but none)."""
        return self.level != "none"

    def patterns(self) -> tuple[str, ...]:
        """The allowlist this policy checks hosts against (empty for `full` and `none`)."""
        if self.level == "trusted":
            return trusted_domains() + self.always_allowed
        if self.level == "custom":
            defaults = trusted_domains() if self.include_defaults else ()
            return self.allowed_domains + defaults + self.always_allowed
        return ()

    def allows(self, host: str) -> bool:
        """True when a connection to HOST may leave the sandbox."""
        if self.level == "full":
            return True
        if self.level == "none":
            return False
        return any(matches(host, p) for p in self.patterns())

    def key(self) -> str:
        """A stable text form, for cache keys: two equal policies give the same key."""
        domains = ",".join(sorted(self.allowed_domains)) if self.level == "custom" else ""
        defaults = self.include_defaults and self.level == "custom"
        return f"{self.level};{domains};{int(defaults)}"
