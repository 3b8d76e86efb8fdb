"""Build the bubblewrap command line that confines one session's process tree."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Network = Literal["none", "full"]
SANDBOX_NETWORKS = ("none", "full")
"""`none`: the sandbox has only its own loopback (sessions reach out through the egress proxy);
`full`: it shares the host's network (only for callers that confine nothing else)."""

PRIVATE_DIRS = ("/tmp", "/run")
"""Directories every sandbox gets its own empty copy of."""

INSTALL_HINT = (
    "bubblewrap is not installed, so sessions cannot be sandboxed. Install the `bubblewrap` "
    "package (for example `sudo apt-get install bubblewrap`), or let an administrator run "
    "sessions unsandboxed with CattyExtension.runtime_kernel = 'catty-runtime-unsandboxed'."
)


class SandboxUnavailable(RuntimeError):
    """This machine cannot sandbox a session; the message says what to install."""


@dataclass
class SandboxSpec:
    """What one session's sandbox may see and do."""

    workspace: Path
    home: Path
    state_dir: Path
    runtime_dir: Path
    """Holds the kernel's connection file and IPC sockets; the server reaches the kernel here."""
    network: Network = "none"
    hidden: list[Path] = field(default_factory=list)
    """Host directories the session must not see (the user's home, other sessions, Jupyter's
    runtime directory); each is replaced by an empty tmpfs."""
    readable: list[Path] = field(default_factory=list)
    """Directories to show again read-only under a hidden one (the Python the runtime needs)."""
    writable: list[Path] = field(default_factory=list)
    """More host paths shown writable (the targets of overlay layers)."""
    env: dict[str, str] = field(default_factory=dict)
    """Variables set with --setenv: visible on the host's command line, so never secrets."""
    hostname: str = "catty"
    die_with_parent: bool = False
    """End the sandbox when the process that started it dies (setup runs; runtimes outlive
    their server on purpose)."""
    plan: dict[str, Any] | None = None
    """A launcher plan (layers, resource limits) to apply before bwrap starts."""

    def to_json(self) -> dict[str, Any]:
        """The spec as plain JSON (it travels through the kernel manager as a launch argument)."""
        return {
            "workspace": str(self.workspace),
            "home": str(self.home),
            "state_dir": str(self.state_dir),
            "runtime_dir": str(self.runtime_dir),
            "network": self.network,
            "hidden": [str(p) for p in self.hidden],
            "readable": [str(p) for p in self.readable],
            "writable": [str(p) for p in self.writable],
            "env": dict(self.env),
            "hostname": self.hostname,
            "die_with_parent": self.die_with_parent,
            "plan": self.plan,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxSpec:
        """Read a spec written by `to_json`."""
        network = data.get("network", "none")
        if network not in SANDBOX_NETWORKS:
            raise ValueError(f"unknown network level {network!r}")
        return cls(
            workspace=Path(data["workspace"]),
            home=Path(data["home"]),
            state_dir=Path(data["state_dir"]),
            runtime_dir=Path(data["runtime_dir"]),
            network=network,
            hidden=[Path(p) for p in data.get("hidden", [])],
            readable=[Path(p) for p in data.get("readable", [])],
            writable=[Path(p) for p in data.get("writable", [])],
            env=dict(data.get("env", {})),
            hostname=str(data.get("hostname", "catty")),
            die_with_parent=bool(data.get("die_with_parent", False)),
            plan=data.get("plan"),
        )


def find_bwrap() -> str:
    """The bubblewrap executable, or SandboxUnavailable with what to install."""
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailable(INSTALL_HINT)
    return path


def python_paths() -> list[Path]:
    """Directories the runtime's Python needs to see, wherever they live."""
    import catty_jupyter

    package_root = Path(catty_jupyter.__file__).resolve().parent.parent
    paths = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), package_root}
    exe = Path(sys.executable)
    paths.add(exe.resolve().parent.parent)
    return sorted(paths)


def build_command(spec: SandboxSpec, argv: list[str], bwrap: str | None = None) -> list[str]:
    """The bwrap argv that runs ARGV confined by SPEC."""
    cmd = [bwrap or find_bwrap()]
    cmd += ["--unshare-all"]
    if spec.network == "full":
        cmd += ["--share-net"]
    cmd += [
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        *(arg for d in PRIVATE_DIRS for arg in ("--tmpfs", d)),
        "--new-session",
        "--hostname", spec.hostname,
    ]  # fmt: skip
    if spec.die_with_parent:
        cmd += ["--die-with-parent"]
    # Hide whole trees first, then show again (read-only) what the runtime's Python needs and
    # (writable) the session's own directories: bwrap applies mounts in order.
    for hidden in _outermost(spec.hidden):
        cmd += ["--tmpfs", str(hidden)]
    replaced = [*spec.hidden, *(Path(p) for p in PRIVATE_DIRS)]
    for readable in _outermost(spec.readable):
        if any(_is_within(readable, h) for h in replaced):
            cmd += ["--ro-bind", str(readable), str(readable)]
    for writable in (*spec.writable, spec.workspace, spec.home, spec.state_dir, spec.runtime_dir):
        cmd += ["--bind", str(writable), str(writable)]
    # ipykernel treats a vanished JPY_PARENT_PID as its parent dying; in a new PID namespace
    # that pid means nothing, so drop it.
    cmd += ["--unsetenv", "JPY_PARENT_PID"]
    env = {
        "HOME": str(spec.home),
        "TMPDIR": "/tmp",
        "CATTY_REMOTE": "true",
        "CLAUDE_CODE_REMOTE": "true",
        "CATTY_NETWORK": spec.network,
        **spec.env,
    }
    for name, value in env.items():
        cmd += ["--setenv", name, value]
    cmd += ["--chdir", str(spec.workspace), "--"]
    return cmd + list(argv)


def review_command(
    workspace: Path, hidden: list[Path], readable: list[Path], argv: list[str],
    bwrap: str | None = None, writable: Sequence[Path] = (),
) -> list[str]:  # fmt: skip
    """The bwrap argv that runs ARGV (the diff of a session, or its hand-over bundle) with
    WORKSPACE shown read-only, unless it is among WRITABLE.

    No network, nothing on the host writable but WRITABLE, HIDDEN covered (READABLE shown again
    inside them): what the agent wrote in its workspace can run nothing that reaches the host.
    """
    # --as-pid-1: the diff itself is the namespace's init, so no reaper process of bwrap's own
    # can be left behind, orphaned, when the server goes away in the middle of a run.
    cmd = [bwrap or find_bwrap(), "--unshare-all", "--die-with-parent", "--as-pid-1",
           "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]  # fmt: skip
    for private in PRIVATE_DIRS:
        cmd += ["--tmpfs", private]
    for path in _outermost(hidden):
        cmd += ["--tmpfs", str(path)]
    replaced = [*hidden, *(Path(p) for p in PRIVATE_DIRS)]
    for path in _outermost(readable):
        if any(_is_within(path, h) for h in replaced):
            cmd += ["--ro-bind", str(path), str(path)]
    if workspace not in writable:
        cmd += ["--ro-bind", str(workspace), str(workspace)]
    for path in writable:
        cmd += ["--bind", str(path), str(path)]
    cmd += ["--unsetenv", "JPY_PARENT_PID", "--chdir", str(workspace), "--"]
    return cmd + list(argv)


def _is_within(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def _outermost(paths: list[Path]) -> list[Path]:
    """Drop paths inside other listed paths (mounting the outer one covers them)."""
    unique = sorted({p.resolve() for p in paths}, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for p in unique:
        if not any(_is_within(p, k) for k in kept):
            kept.append(p)
    return kept
