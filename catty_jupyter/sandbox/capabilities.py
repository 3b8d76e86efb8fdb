"""What this host can confine and limit, checked by really trying (behind `jupyter catty doctor`)."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

from ..core.environments import Resources
from . import limits

CHECK_TIMEOUT = 0.3
"""Seconds one command may take (each takes milliseconds; six of them must fit in 2 s)."""

SANDBOX_NEEDS = ("bubblewrap", "PID namespace", "mount namespace", "network namespace")
"""The checks a session's sandbox cannot start without."""


@dataclass(frozen=True)
class Capability:
    """One thing the host can (or cannot) do for sessions, and how it is done."""

    name: str
    available: bool
    how: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        """The capability as plain JSON."""
        return asdict(self)


EGRESS_PROXY = Capability(
    "egress proxy", True, "allowlist proxy on the host, reached through a unix socket",
    "pure Python; needs no privileges",
)  # fmt: skip
"""Always there: the proxy is ours, in the server."""


def probe(*, cgroup_parent: str | None = None) -> list[Capability]:
    """Check every mechanism sessions rely on; quick (well under 2 s) and never raises."""
    bwrap = shutil.which("bwrap")
    caps = [_bubblewrap(bwrap)]
    for name, flags in (
        ("user namespace", ["--unshare-user"]),
        ("PID namespace", ["--unshare-pid"]),
        ("mount namespace", ["--tmpfs", "/tmp"]),
        ("network namespace", ["--unshare-net"]),
    ):
        caps.append(_bwrap_check(bwrap, name, flags))
    caps += [
        _overlayfs(),
        EGRESS_PROXY,
        *_limits(cgroup_parent),
        _process_limits(),
    ]
    return caps


def format_report(caps: list[Capability]) -> str:
    """CAPS as an aligned table (what, yes/no, how enforced, detail) and a one-line summary."""
    rows = [("what", "", "how enforced", "detail")]
    rows += [(c.name, "yes" if c.available else "no", c.how, c.detail) for c in caps]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[3]
             for row in rows]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 6)
    return "\n".join(line.rstrip() for line in lines) + "\n\n" + summary(caps) + "\n"


def summary(caps: list[Capability]) -> str:
    """One line: can sessions be sandboxed here, and how many checks passed."""
    passed = sum(c.available for c in caps)
    missing = [c.name for c in caps if c.name in SANDBOX_NEEDS and not c.available]
    if missing:
        return (f"Sessions cannot be sandboxed here ({', '.join(missing)} unavailable); "
                f"{passed} of {len(caps)} checks passed.")  # fmt: skip
    return f"Sessions can be sandboxed here; {passed} of {len(caps)} checks passed."


def report_json(caps: list[Capability]) -> list[dict[str, Any]]:
    """CAPS as a list of JSON objects."""
    return [c.to_json() for c in caps]


def _run(argv: list[str]) -> tuple[bool, str]:
    """Run ARGV briefly: (succeeded, its first line of output or why it failed)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=CHECK_TIMEOUT,
                              stdin=subprocess.DEVNULL)  # fmt: skip
    except subprocess.TimeoutExpired:
        return False, f"took longer than {CHECK_TIMEOUT} s"
    except (OSError, subprocess.SubprocessError) as exc:
        return False, str(exc)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode == 0, lines[0] if lines else f"exit status {done.returncode}"


def _bubblewrap(bwrap: str | None) -> Capability:
    if bwrap is None:
        return Capability("bubblewrap", False, "-", "not installed: install the `bubblewrap` "
                          "package (for example `sudo apt-get install bubblewrap`)")  # fmt: skip
    ok, out = _run([bwrap, "--version"])
    return Capability("bubblewrap", ok, "sandbox around every session", f"{out} at {bwrap}")


def _bwrap_check(bwrap: str | None, name: str, flags: list[str]) -> Capability:
    if bwrap is None:
        return Capability(name, False, "-", "needs bubblewrap")
    ok, out = _run([bwrap, "--ro-bind", "/", "/", *flags, "true"])
    how = {"user namespace": "bwrap --unshare-user", "mount namespace": "bwrap mounts"}
    if ok:
        detail = "works"
        if name == "user namespace" and os.geteuid() == 0:
            detail = "works (not needed: the server runs as root)"
    else:
        detail = f"failed: {out}"
    return Capability(name, ok, how.get(name, f"bwrap {' '.join(flags)}"), detail)


def _overlayfs() -> Capability:
    how = "copy-on-write layers in a private mount namespace"
    unshare = shutil.which("unshare")
    if unshare is None:
        return Capability("overlayfs", False, "-", "`unshare` (util-linux) is not installed")
    with tempfile.TemporaryDirectory(prefix="catty-doctor-") as tmp:
        for part in ("lower", "upper", "work", "merged"):
            os.mkdir(os.path.join(tmp, part))
        options = f"lowerdir={tmp}/lower,upperdir={tmp}/upper,workdir={tmp}/work"
        # Unprivileged, a user namespace is what allows the mount (kernel 5.11 and later).
        flags = ["-m"] if os.geteuid() == 0 else ["-Urm"]
        ok, out = _run([unshare, *flags, "--propagation", "private",
                        "mount", "-t", "overlay", "overlay", "-o", options, f"{tmp}/merged"])  # fmt: skip
    detail = f"unshare {' '.join(flags)} + mount -t overlay" if ok else f"failed: {out}"
    return Capability("overlayfs", ok, how if ok else "-", detail)


def _limits(cgroup_parent: str | None) -> list[Capability]:
    """Memory, CPU and disk: try what `prepare` would do for a session, then undo it."""
    try:
        enforcement = limits.prepare(
            f"doctor-{os.getpid()}-{time.monotonic_ns()}",
            Resources(cpus=1, memory=256 << 20, disk=1 << 30),
            parent=cgroup_parent,
        )
    except Exception as exc:  # the doctor reports, it does not crash
        enforcement = limits.Enforcement(notes=[f"failed: {exc}"])
    with contextlib.suppress(Exception):
        limits.release(enforcement)
    notes = enforcement.notes
    v = enforcement.cgroup_version
    if enforcement.kernel_memory:
        where = enforcement.cgroup or ""
        memory = Capability("memory limit", True, f"cgroup v{v} memory limit",
                            "; ".join([f"in {os.path.dirname(where)}", *_about(notes, v)]))  # fmt: skip
    else:
        why = [n for n in notes if n.startswith("cgroup")] or ["no cgroup memory controller"]
        memory = Capability("memory limit", True, "watchdog on the tree's resident memory, checked "
                            "every second", "; ".join(why))  # fmt: skip
    ncpu = len(os.sched_getaffinity(0))
    if enforcement.kernel_cpu:
        where = enforcement.cpu_cgroup or enforcement.cgroup or ""
        cpu = Capability("CPU limit", True, f"cgroup v{v} CPU quota, plus affinity",
                         f"in {os.path.dirname(where)}")  # fmt: skip
    elif ncpu > 1:
        why = [n for n in notes if n.startswith("cgroup") and " cpu" in n]
        cpu = Capability("CPU limit", True, "CPU affinity (whole CPUs)",
                         "; ".join(["advisory: a process may widen its own affinity", *why]))  # fmt: skip
    else:
        cpu = Capability("CPU limit", False, "-", "one CPU and no cgroup cpu controller")
    disk = Capability("disk limit", "RLIMIT_FSIZE" in enforcement.rlimits,
                      "RLIMIT_FSIZE per file + workspace usage checked",
                      "writes past the limit fail with 'File too large'")  # fmt: skip
    return [memory, cpu, disk]


def _about(notes: list[str], version: int | None) -> list[str]:
    """The notes about cgroups, without their `cgroup vN:` prefix."""
    return [n.split(": ", 1)[1] for n in notes if n.startswith(f"cgroup v{version}:")]


def _process_limits() -> Capability:
    try:
        # Setting a limit to what it already is still goes through the syscall (and seccomp).
        current = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, current)
    except (OSError, ValueError) as exc:
        return Capability("process limits", False, "-", f"setrlimit failed: {exc}")
    return Capability("process limits", True, "setrlimit in the launcher",
                      "per-process limits (file size) inherited by the whole tree")  # fmt: skip
