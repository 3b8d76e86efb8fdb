"""What the session manager tells a runtime about its session (a JSON file in the state dir)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..sandbox.portforward import PortForward

CONFIG_ENV = "CATTY_SESSION_CONFIG"
"""The environment variable naming the runtime's config file."""

EVENT_MIMETYPE = "application/vnd.catty.event+json"
"""The mimetype of transcript events in IOPub `display_data` messages."""

CONTROL_COMM = "catty.control"
"""The comm id the manager uses for control messages (start, keepalive, permission replies,
events it records)."""


@dataclass
class RuntimeConfig:
    """The runtime's view of its session."""

    label: str
    agent: str
    workspace: str
    home: str
    state_dir: str
    options: dict[str, Any] = field(default_factory=dict)
    forwards: list[PortForward] = field(default_factory=list)
    resume: bool = False
    secret_names: list[str] = field(default_factory=list)
    """Variables whose values the runtime masks in every event it writes (the values come from
    its own environment, never from this file)."""
    idle_timeout: float = 7200.0
    """Seconds with no word from any Jupyter server and no agent event before the runtime ends
    itself, so a runtime whose server never comes back is not left running forever."""

    @property
    def journal_path(self) -> Path:
        """Where the runtime writes the transcript journal."""
        return Path(self.state_dir) / "journal.jsonl"

    def write(self, path: Path) -> None:
        """Save the config for the runtime to read."""
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def read(cls, path: Path) -> RuntimeConfig:
        """Load a config written by `write`."""
        data = json.loads(Path(path).read_text())
        data["forwards"] = [PortForward(**f) for f in data.get("forwards", [])]
        return cls(**data)
