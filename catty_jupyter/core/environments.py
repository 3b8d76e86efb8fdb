"""Environments: named recipes for sessions (SPEC, Environment).

An environment says what a session may use: its agent and agent options, its network level and
allowlist, its variables (some of them secret), its setup script and its resources. This module
holds the model, its validation and the `.env` reader; where environments are kept is the
server's business.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import CattyError
from .network import NETWORK_LEVELS, BadDomain, NetworkPolicy, normalize_pattern

MASK = "********"
"""What API responses show instead of a secret's value."""

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
VARIABLE_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

RESERVED_VARIABLES = frozenset(
    {"HOME", "TMPDIR", "CLAUDE_CODE_REMOTE", "CLAUDE_ENV_FILE", "HTTP_PROXY", "HTTPS_PROXY",
     "http_proxy", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}
)  # fmt: skip
"""Variables the sandbox sets itself; an environment may not override them (nor any CATTY_*)."""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class BadEnvironment(CattyError):
    """An environment definition that cannot be used; `field` names the part that is wrong."""

    reason = "bad_environment"

    def __init__(self, message: str, *, field: str, line: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.line = line

    def details(self) -> dict[str, Any]:
        """What the API adds to the error body so an editor can show it beside the field."""
        return {"field": self.field, **({"line": self.line} if self.line else {})}


def parse_dotenv(text: str) -> dict[str, str]:
    """Read `.env` text: one `KEY=value` per line; `#` comments and blank lines are ignored.

    Values are taken literally, quotes included (SPEC). A malformed line raises BadEnvironment
    naming its line number.
    """
    values: dict[str, str] = {}
    first_seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep:
            raise BadEnvironment(
                f"line {number}: expected KEY=value (there is no '=' on it)",
                field="env", line=number,
            )  # fmt: skip
        if not VARIABLE_PATTERN.match(key):
            raise BadEnvironment(
                f"line {number}: {_quote(key)} is not a variable name (letters, digits and _, "
                "not starting with a digit)", field="env", line=number,
            )  # fmt: skip
        if key in RESERVED_VARIABLES or key.startswith("CATTY_"):
            raise BadEnvironment(
                f"line {number}: {key} is set by the sandbox itself and cannot be overridden",
                field="env", line=number,
            )  # fmt: skip
        if key in first_seen:
            raise BadEnvironment(
                f"line {number}: {key} is already set on line {first_seen[key]}",
                field="env", line=number,
            )  # fmt: skip
        if "\0" in value:
            raise BadEnvironment(f"line {number}: the value of {key} holds a NUL character, "
                                 "which no variable can", field="env", line=number)  # fmt: skip
        first_seen[key] = number
        values[key] = value
    return values


def format_dotenv(values: dict[str, str], secrets: frozenset[str] = frozenset()) -> str:
    """`.env` text for VALUES, with the value of every name in SECRETS masked."""
    return "".join(f"{k}={MASK if k in secrets else v}\n" for k, v in values.items())


def parse_size(value: Any, field_name: str) -> int | None:
    """Bytes from an int or a size like `512M`, `2G`, `1.5GiB`; None for empty."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadEnvironment(f"{field_name} must be a size like 512M or 2G", field=field_name)
    if isinstance(value, int):
        size = value
        if size > 1 << 62:
            raise BadEnvironment(f"{field_name}: {value!r} is too large", field=field_name)
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise BadEnvironment(
                f"{field_name}: {value!r} is not a size; write it like 512M or 2G",
                field=field_name,
            )  # fmt: skip
        scaled = float(match.group(1)) * _UNITS[match.group(2).lower()]
        if scaled > 1 << 62:  # also catches inf, which int() cannot take
            raise BadEnvironment(f"{field_name}: {value!r} is too large", field=field_name)
        size = int(scaled)
    if size <= 0:
        raise BadEnvironment(f"{field_name} must be more than zero", field=field_name)
    return size


def format_size(size: int | None) -> str:
    """A size in the largest unit that keeps it readable (`2G`, `512M`)."""
    if size is None:
        return "-"
    for unit in ("T", "G", "M", "K"):
        factor = _UNITS[unit.lower()]
        if size >= factor:
            text = f"{size / factor:.1f}".removesuffix(".0")
            return f"{text}{unit}"
    return f"{size}B"


@dataclass(frozen=True)
class Resources:
    """How much machine one session may take; None means no limit of its own."""

    cpus: float | None = None
    memory: int | None = None
    """Bytes of memory for the whole process tree."""
    disk: int | None = None
    """Bytes the session's workspace and writable layers may hold."""

    def to_json(self) -> dict[str, Any]:
        """Resources as the API shows them (sizes in bytes)."""
        return {"cpus": self.cpus, "memory": self.memory, "disk": self.disk}

    @classmethod
    def from_json(cls, data: Any) -> Resources:
        """Validate resources from the API or config (sizes as bytes or `2G`-style text)."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise BadEnvironment("resources must be an object {cpus, memory, disk}",
                                 field="resources")  # fmt: skip
        unknown = set(data) - {"cpus", "memory", "disk"}
        if unknown:
            raise BadEnvironment(f"unknown resource {sorted(unknown)[0]!r}; known: cpus, memory, "
                                 "disk", field="resources")  # fmt: skip
        cpus = data.get("cpus")
        if cpus is not None and cpus != "":
            try:
                cpus = float(cpus)
            except (TypeError, ValueError, OverflowError):
                raise BadEnvironment(f"cpus must be a number, not {cpus!r}", field="cpus") from None
            if not 0 < cpus <= 4096:
                raise BadEnvironment("cpus must be more than zero", field="cpus")
        else:
            cpus = None
        return cls(
            cpus=cpus,
            memory=parse_size(data.get("memory"), "memory"),
            disk=parse_size(data.get("disk"), "disk"),
        )


@dataclass(frozen=True)
class Environment:
    """What a session started in this environment runs with."""

    name: str
    agent: str = "claude"
    network: str = "none"
    allowed_domains: tuple[str, ...] = ()
    include_defaults: bool = False
    env: dict[str, str] = field(default_factory=dict)
    secrets: frozenset[str] = frozenset()
    setup_script: str = ""
    resources: Resources = field(default_factory=Resources)
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    read_only: bool = False
    """True for environments an administrator defined in the server's configuration."""
    updated: float = 0.0

    def policy(self, always_allowed: tuple[str, ...] = ()) -> NetworkPolicy:
        """The network policy sessions in this environment run under."""
        return NetworkPolicy(self.network, self.allowed_domains, self.include_defaults,
                             always_allowed)  # fmt: skip

    @property
    def secret_values(self) -> list[str]:
        """The values that must never be shown (non-empty secret values)."""
        return [v for k, v in self.env.items() if k in self.secrets and v]

    def to_json(self) -> dict[str, Any]:
        """The environment as the API shows it: secret values masked."""
        return {
            "name": self.name,
            "description": self.description,
            "agent": self.agent,
            "options": self.options,
            "network": self.network,
            "allowed_domains": list(self.allowed_domains),
            "include_defaults": self.include_defaults,
            "env": format_dotenv(self.env, self.secrets),
            "variables": [{"name": k, "secret": k in self.secrets} for k in self.env],
            "secrets": sorted(self.secrets),
            "setup_script": self.setup_script,
            "resources": self.resources.to_json(),
            "read_only": self.read_only,
            "updated": self.updated,
        }

    def to_record(self) -> dict[str, Any]:
        """Everything, secret values included, for the server's own store (never the API)."""
        data = self.to_json()
        data["env"] = format_dotenv(self.env)
        del data["variables"], data["read_only"]
        return data

    @classmethod
    def from_config(cls, name: str, data: dict[str, Any]) -> Environment:
        """An administrator's environment from the extension's `environments` config.

        Without a `secrets` list every variable is secret: an administrator's config often
        holds keys, and users should not see them unless the config says they may.
        """
        data = dict(data)
        env = data.get("env")
        if isinstance(env, dict):
            # Config may give variables as a mapping; it goes through the same checks as text.
            data["env"] = format_dotenv({str(k): str(v) for k, v in env.items()})
        environment = cls.from_json(name, data, read_only=True)
        if "secrets" not in data:
            environment = replace(environment, secrets=frozenset(environment.env))
        return environment

    @classmethod
    def from_json(
        cls, name: str, data: dict[str, Any], previous: Environment | None = None,
        read_only: bool = False,
    ) -> Environment:  # fmt: skip
        """Validate an environment from the API: a full definition, or (with PREVIOUS) the
        fields to change. A secret sent back masked keeps its stored value."""
        if not isinstance(data, dict):
            raise BadEnvironment("the body must be a JSON object", field="body")
        if not NAME_PATTERN.match(name):
            raise BadEnvironment(
                f"{name!r} is not a valid environment name: use lower-case letters, digits, "
                "'-', '_' and '.', starting with a letter or digit (at most 63)", field="name",
            )  # fmt: skip
        known = {"name", "description", "agent", "options", "network", "allowed_domains",
                 "include_defaults", "env", "secrets", "setup_script", "resources",
                 "variables", "read_only", "updated"}  # fmt: skip
        unknown = sorted(set(data) - known)
        if unknown:
            raise BadEnvironment(f"unknown field {unknown[0]!r}", field=unknown[0])
        base = previous or cls(name=name)
        network = _text(data, "network", base.network)
        if network not in NETWORK_LEVELS:
            raise BadEnvironment(
                f"network must be one of {', '.join(NETWORK_LEVELS)}, not {network!r}",
                field="network",
            )  # fmt: skip
        domains = base.allowed_domains
        if "allowed_domains" in data:
            domains = _domains(data["allowed_domains"])
        env, secrets = base.env, base.secrets
        if "env" in data:
            text = data["env"]
            if not isinstance(text, str):
                raise BadEnvironment("env must be .env text (KEY=value lines)", field="env")
            env = parse_dotenv(text)
        if "secrets" in data:
            secrets = frozenset(_names(data["secrets"], "secrets"))
        # A secret sent back as the mask keeps the value it had.
        env = {
            k: (base.env.get(k, "") if v == MASK and k in base.secrets else v)
            for k, v in env.items()
        }
        missing = sorted(secrets - set(env))
        if missing:
            raise BadEnvironment(f"secret {missing[0]} is not one of the variables; add a "
                                 f"{missing[0]}=... line to env", field="secrets")  # fmt: skip
        options = data.get("options", base.options)
        if not isinstance(options, dict):
            raise BadEnvironment("options must be an object", field="options")
        include_defaults = data.get("include_defaults", base.include_defaults)
        if not isinstance(include_defaults, bool):
            raise BadEnvironment("include_defaults must be true or false",
                                 field="include_defaults")  # fmt: skip
        resources = base.resources
        if "resources" in data:
            resources = Resources.from_json(data["resources"])
        return cls(
            name=name,
            agent=_text(data, "agent", base.agent) or "claude",
            network=network,
            allowed_domains=domains,
            include_defaults=include_defaults,
            env=env,
            secrets=secrets,
            setup_script=_text(data, "setup_script", base.setup_script).replace("\r\n", "\n"),
            resources=resources,
            options=dict(options),
            description=_text(data, "description", base.description),
            read_only=read_only,
            updated=time.time(),
        )

    def with_changes(self, **changes: Any) -> Environment:
        """A copy with CHANGES applied (no validation: for the server's own defaults)."""
        return replace(self, **changes)


def _text(data: dict[str, Any], key: str, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise BadEnvironment(f"{key} must be text", field=key)
    return value


def _names(value: Any, field_name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadEnvironment(f"{field_name} must be a list of variable names", field=field_name)
    return value


def _domains(value: Any) -> tuple[str, ...]:
    """Allowlist entries from a list or from text with one per line."""
    if isinstance(value, str):
        value = [line for line in value.splitlines() if line.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadEnvironment("allowed_domains must be a list of host names",
                             field="allowed_domains")  # fmt: skip
    try:
        return tuple(dict.fromkeys(normalize_pattern(v) for v in value))
    except BadDomain as exc:
        raise BadEnvironment(f"allowed_domains: {exc}", field="allowed_domains") from None


def _quote(text: str, limit: int = 40) -> str:
    """Part of a malformed line for an error message (never the whole of a possible secret)."""
    shown = text if len(text) <= limit else text[:limit] + "…"
    return repr(shown)
