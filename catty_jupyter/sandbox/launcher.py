"""The step between the server and bubblewrap: apply resource limits, mount layers, exec bwrap.

Run as `python -m catty_jupyter.sandbox.launcher PLAN_JSON -- bwrap ...`. It replaces itself
with bwrap, so the process the server watches (and kills) is bwrap's. Only used when a session
has layers or limits; a plain sandbox starts bwrap directly.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from . import layers as layer_mounts
from . import limits


@dataclass
class LaunchPlan:
    """What to set up before bwrap runs."""

    layers: list[layer_mounts.Layer] = field(default_factory=list)
    enforcement: limits.Enforcement | None = None

    def __bool__(self) -> bool:
        return bool(self.layers) or self.enforcement is not None

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON (it goes on the launcher's command line: no secrets in it)."""
        return {
            "layers": [layer.to_json() for layer in self.layers],
            "enforcement": self.enforcement.to_json() if self.enforcement else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LaunchPlan:
        """Read a plan written by `to_json`."""
        enforcement = data.get("enforcement")
        return cls(
            layers=[layer_mounts.Layer(**layer) for layer in data.get("layers") or []],
            enforcement=limits.Enforcement.from_json(enforcement) if enforcement else None,
        )

    def command(self, argv: list[str]) -> list[str]:
        """ARGV (a bwrap command line) prefixed with the launcher that applies this plan."""
        if not self:
            return list(argv)
        plan = json.dumps(self.to_json(), separators=(",", ":"))
        return [sys.executable, "-m", "catty_jupyter.sandbox.launcher", plan, "--", *argv]


def main(argv: list[str]) -> None:
    """Apply the plan in ARGV[0], then exec what follows `--`."""
    if len(argv) < 3 or argv[1] != "--":
        sys.exit("usage: python -m catty_jupyter.sandbox.launcher PLAN_JSON -- COMMAND...")
    plan = LaunchPlan.from_json(json.loads(argv[0]))
    command = argv[2:]
    try:
        # Limits first: joining a cgroup needs the host's view, which a user namespace hides.
        if plan.enforcement is not None:
            limits.enter(plan.enforcement)
        if plan.layers:
            layer_mounts.enter_mount_namespace()
            layer_mounts.mount(plan.layers)
    except OSError as exc:
        sys.stderr.write(f"catty: the sandbox could not be prepared: {exc}\n")
        sys.exit(70)
    # Python ignores SIGPIPE and that survives exec; the sandbox's shells expect the default.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
