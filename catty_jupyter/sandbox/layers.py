"""Filesystem layers: overlay mounts that let a sandbox change system directories safely.

A sandbox normally sees the host's `/` read-only. When its environment has a setup script, the
system directories a setup changes (`/usr`, `/etc`, `/var`, `/opt`) and the session's HOME become
overlays: the host below, the environment cache's snapshot on top of it read-only, and a writable
layer of the session's own above both. A setup run has the same stack with the snapshot being
built as its writable layer. The mounts happen in a private mount namespace made by the launcher
just before bubblewrap starts, so the host never sees them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SYSTEM_TARGETS = ("/usr", "/etc", "/var", "/opt")
"""System directories a setup script may change (packages with apt-get or pip, files in /opt)."""

HOME_LAYER = "home"
"""The name of HOME's layer inside a snapshot (HOME's path differs from session to session)."""

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_MS_REC = 0x4000
_MS_PRIVATE = 1 << 18


class LayerError(OSError):
    """The overlays could not be mounted; the message says which and why."""


@dataclass
class Layer:
    """One overlay: TARGET shows UPPER (writable) over LOWERS (read-only, topmost first) over
    the host's own TARGET (unless `replace_host`)."""

    target: str
    upper: str
    work: str
    lowers: list[str] = field(default_factory=list)
    replace_host: bool = False
    """True when the host's directory is not the bottom layer (a session's HOME, whose host
    directory is the upper layer itself)."""

    def options(self) -> str:
        """The overlay mount options."""
        lowers = [*self.lowers] if self.replace_host else [*self.lowers, self.target]
        if not lowers:
            # overlayfs needs a lower layer; an empty one costs nothing.
            lowers = [str(Path(self.work).parent / "empty")]
            Path(lowers[0]).mkdir(parents=True, exist_ok=True)
        return f"lowerdir={':'.join(lowers)},upperdir={self.upper},workdir={self.work}"

    def to_json(self) -> dict[str, Any]:
        """The layer as plain JSON (for the launcher's argv)."""
        return asdict(self)


def system_layers(
    uppers: Path, snapshot: Path | None = None, home: Path | None = None,
    home_upper: Path | None = None, keep_out: Path | None = None,
) -> list[Layer]:  # fmt: skip
    """Layers for the system directories (and HOME when given), writable into UPPERS, with the
    environment cache's SNAPSHOT (if any) read-only in between.

    A session passes HOME_UPPER = HOME: its HOME directory on the host is its own writable layer,
    so what the agent writes there is where the server looks for it. KEEP_OUT (the server's data
    directory, which holds every upper layer) is never under an overlay: overlayfs refuses an
    upper layer inside its lower one, so a system directory holding it is layered child by child
    around it (a data directory under /var leaves /var's other directories writable).
    """
    layers = []
    for target in _targets(keep_out or uppers):
        name = target.strip("/")
        lowers = []
        if snapshot is not None and (snapshot / name).is_dir():
            lowers.append(str(snapshot / name))
        layers.append(Layer(target=target, upper=str(uppers / name),
                            work=str(uppers / ".work" / name), lowers=lowers))  # fmt: skip
    if home is not None:
        lowers = []
        if snapshot is not None and (snapshot / HOME_LAYER).is_dir():
            lowers.append(str(snapshot / HOME_LAYER))
        upper = home_upper or uppers / HOME_LAYER
        if lowers or home_upper is None:
            layers.append(Layer(target=str(home), upper=str(upper),
                                work=str(uppers / ".work" / HOME_LAYER), lowers=lowers,
                                replace_host=True))  # fmt: skip
    return layers


def _targets(keep_out: Path) -> list[str]:
    """The directories to layer: SYSTEM_TARGETS, split around KEEP_OUT where it lies inside one."""
    avoid = keep_out.resolve()
    found: list[str] = []

    def visit(directory: Path) -> None:
        if not directory.is_dir() or directory.is_symlink():
            return
        if directory == avoid or directory in avoid.parents:
            if directory == avoid:
                return
            with os.scandir(directory) as entries:
                children = sorted(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False))
            for child in children:
                visit(child)
            return
        found.append(str(directory))

    for target in SYSTEM_TARGETS:
        visit(Path(target))
    return found


def prepare_dirs(layers: list[Layer]) -> None:
    """Create every layer's upper and work directories (on the host, before launch)."""
    for layer in layers:
        Path(layer.upper).mkdir(parents=True, exist_ok=True)
        Path(layer.work).mkdir(parents=True, exist_ok=True)


def enter_mount_namespace() -> None:
    """Move this process into a private mount namespace (and, when not root, a user namespace
    in which it is root), so mounts made here are seen only by it and what it runs."""
    libc = _libc()
    uid, gid = os.getuid(), os.getgid()
    flags = _CLONE_NEWNS if uid == 0 else _CLONE_NEWNS | _CLONE_NEWUSER
    if libc.unshare(flags) != 0:
        raise LayerError(ctypes.get_errno(), "cannot make a private mount namespace "
                         f"({os.strerror(ctypes.get_errno())}); `jupyter catty doctor` tells more")  # fmt: skip
    if uid != 0:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
    if libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        raise LayerError(ctypes.get_errno(), "cannot make / private in the new mount namespace")


def mount(layers: list[Layer]) -> None:
    """Mount each layer (call inside the namespace from `enter_mount_namespace`)."""
    libc = _libc()
    for layer in layers:
        options = layer.options().encode()
        if libc.mount(b"overlay", layer.target.encode(), b"overlay", 0, options) != 0:
            errno = ctypes.get_errno()
            raise LayerError(errno, f"cannot mount the overlay on {layer.target}: "
                             f"{os.strerror(errno)} ({options.decode()})")  # fmt: skip


def _libc() -> Any:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
