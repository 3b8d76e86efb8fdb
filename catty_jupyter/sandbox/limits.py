"""Per-session resource limits, enforced with what the host offers.

`prepare` runs in the server before a launch and makes the session's cgroup where the host allows
it; `enter` runs in the launcher just before it execs bwrap; the server's watchdog calls
`memory_reading` and `disk_usage`; `release` removes the cgroup once the tree has ended. Where
the kernel cannot limit memory, the watchdog does: it sums the tree's memory every second and
ends the tree with `kill_tree` when it is over.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import resource
import signal
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Only for annotations: `enter` runs in the small launcher, which should not load the core.
    from ..core.environments import Resources

CGROUP_PREFIX = "catty-"
"""Every session's cgroup is named this plus the session id."""

CPU_PERIOD_US = 100_000
"""The CFS period the CPU quota is expressed in (the kernel's default)."""

PARENT_HINT = (
    "run the server in a leaf cgroup and set CattyExtension.cgroup_parent to a delegated cgroup "
    "whose cgroup.subtree_control may enable memory and cpu"
)

_pinned: dict[str, list[int]] = {}
"""CPUs each live session is pinned to, so new sessions go to the least used ones."""


@dataclass
class Enforcement:
    """How the limits of one session are enforced (travels as JSON to the launcher)."""

    session_id: str = ""
    cgroup: str | None = None
    """The session's cgroup directory: the v2 group, or the v1 memory group; None when none."""
    cgroup_version: int | None = None
    cpu_cgroup: str | None = None
    """The v1 cpu controller's group (v2 keeps cpu in `cgroup`)."""
    cpus: list[int] = field(default_factory=list)
    """CPU ids the tree is pinned to; empty for no pinning."""
    rlimits: dict[str, int] = field(default_factory=dict)
    """`resource.RLIMIT_*` names and the value set as both soft and hard limit."""
    kernel_memory: bool = False
    """True when the cgroup holds the memory limit; otherwise the watchdog enforces it."""
    kernel_cpu: bool = False
    """True when a cgroup holds the CPU quota; otherwise only affinity limits CPU."""
    notes: list[str] = field(default_factory=list)
    """Why a mechanism was not used, or what it leaves out (for logs and `doctor`)."""

    def to_json(self) -> dict[str, Any]:
        """The enforcement as plain JSON."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Enforcement:
        """Read an enforcement written by `to_json`."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class MemoryReading:
    """One look at a session's memory."""

    used: int
    limit: int
    oom_killed: bool
    """The kernel killed a process of the session because the cgroup ran out of memory."""
    over: bool
    """The watchdog found the tree above its limit (only when the kernel does not limit it)."""


def prepare(session_id: str, resources: Resources, *, parent: str | None = None) -> Enforcement:
    """Make and configure what limits RESOURCES for one session; falls back, never raises.

    PARENT is a delegated cgroup v2 directory to make session groups in; by default the
    server's own cgroup is tried.
    """
    enforcement = Enforcement(session_id=session_id)
    safe = "".join(c if c.isalnum() or c in "_.-" else "_" for c in session_id)
    name = CGROUP_PREFIX + safe[:200]  # a cgroup name is a file name: 255 bytes at most
    if resources.memory or resources.cpus:
        v2_notes: list[str] = []
        try:
            if not _prepare_v2(enforcement, name, resources, parent, v2_notes):
                _prepare_v1(enforcement, name, resources)
        except OSError as exc:  # a host that half-offers cgroups must not stop the session
            enforcement.notes.append(f"cgroups: {exc}")
        missing = (resources.memory and not enforcement.kernel_memory) or (
            resources.cpus and not enforcement.kernel_cpu
        )
        if missing:  # on a hybrid host v1 may have done it all, making v2's trouble moot
            enforcement.notes[:0] = v2_notes
    if resources.memory and not enforcement.kernel_memory:
        enforcement.notes.append("memory: no cgroup limits it here; the watchdog sums the "
                                 "tree's memory every second")  # fmt: skip
    if resources.cpus and not enforcement.kernel_cpu:
        enforcement.notes.append("cpu: no cgroup quota here; only CPU affinity, which a "
                                 "process may widen")  # fmt: skip
    enforcement.cpus = _choose_cpus(session_id, resources.cpus)
    if resources.disk:
        enforcement.rlimits["RLIMIT_FSIZE"] = resources.disk
    return enforcement


def enter(enforcement: Enforcement) -> None:
    """Put the calling process under ENFORCEMENT; call it in the launcher right before exec.

    Raises OSError when the session's cgroup cannot be joined: starting unconfined would
    silently lose the limit.
    """
    pid = str(os.getpid())
    for group in (enforcement.cgroup, enforcement.cpu_cgroup):
        if group:
            try:
                _write(Path(group, "cgroup.procs"), pid)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot join the session's cgroup {group}: "
                                         f"{exc.strerror}") from exc  # fmt: skip
    if enforcement.cpus:
        os.sched_setaffinity(0, enforcement.cpus)
    for name, value in enforcement.rlimits.items():
        which = getattr(resource, name)
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)  # raising a hard limit needs privileges we may lack
        resource.setrlimit(which, (value, value))
    # A Python launcher ignores SIGPIPE and exec keeps ignored signals: give pipelines back
    # their usual ending. SIGXFSZ stays ignored on purpose, so a write past the disk limit
    # fails with "File too large" that the agent can read, rather than killing the writer.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def release(enforcement: Enforcement, timeout: float = 1.0) -> None:
    """Remove the session's cgroups, killing whatever is left in them first."""
    _pinned.pop(enforcement.session_id, None)
    deadline = time.monotonic() + timeout
    for group in (enforcement.cgroup, enforcement.cpu_cgroup):
        if group:
            _remove_cgroup(Path(group), deadline)


def memory_reading(enforcement: Enforcement, root_pid: int, limit: int) -> MemoryReading:
    """The session's memory use: from its cgroup when the kernel limits it, else the tree's."""
    if enforcement.cgroup and enforcement.kernel_memory:
        group = Path(enforcement.cgroup)
        with contextlib.suppress(OSError, ValueError):
            if enforcement.cgroup_version == 2:
                used = int(_read(group / "memory.current"))
                counts = _counters(group / "memory.events")
            else:
                used = int(_read(group / "memory.usage_in_bytes"))
                # "oom_kill N" appeared in kernel 4.13; older kernels still kill, unreported.
                counts = _counters(group / "memory.oom_control")
            return MemoryReading(used, limit, counts.get("oom_kill", 0) > 0, over=False)
    used = sum(_process_memory(pid) for pid in tree_pids(root_pid))
    return MemoryReading(used, limit, oom_killed=False, over=bool(limit) and used > limit)


def tree_pids(root_pid: int) -> list[int]:
    """ROOT_PID and every live descendant of it, parents before children."""
    children = _children_map(root_pid)
    found = [root_pid] if _alive(root_pid) else []
    i = 0
    while i < len(found):
        found.extend(children.get(found[i], ()))
        i += 1
    return found


def kill_tree(root_pid: int) -> None:
    """SIGKILL ROOT_PID and every process under it."""
    # Stop first, until no new process appears: killing a parent before its children are known
    # would let them be re-parented out of reach, and a running tree can fork meanwhile.
    stopped: dict[int, None] = {}  # ordered, parents first
    for _ in range(100):
        new = [pid for pid in tree_pids(root_pid) if pid not in stopped]
        if not new:
            break
        for pid in new:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        stopped.update(dict.fromkeys(new))
    for pid in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def disk_usage(*paths: Path) -> int:
    """Bytes PATHS take on disk: allocated blocks, symlinks not followed, hard links once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    pending = [os.fspath(p) for p in paths]
    while pending:
        path = pending.pop()
        try:
            st = os.lstat(path)
        except OSError:
            continue  # vanished while we walked: a live workspace changes under us
        if st.st_nlink > 1 or stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
        total += st.st_blocks * 512
        if stat.S_ISDIR(st.st_mode):
            with contextlib.suppress(OSError), os.scandir(path) as entries:
                pending.extend(entry.path for entry in entries)
    return total


# -- cgroups ---------------------------------------------------------------------------------


def cgroup_mounts() -> list[tuple[int, frozenset[str], str, Path]]:
    """Mounted cgroup hierarchies: (version, v1 controllers, root within the hierarchy, mount)."""
    mounts: list[tuple[int, frozenset[str], str, Path]] = []
    with contextlib.suppress(OSError):
        for line in _read(Path("/proc/self/mountinfo")).splitlines():
            before, _, after = line.partition(" - ")
            fields, tail = before.split(), after.split()
            if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
                continue
            mount = Path(_unescape(fields[4]))
            if tail[0] == "cgroup2":
                mounts.append((2, frozenset(), _unescape(fields[3]), mount))
            else:
                controllers = frozenset(tail[2].split(",")) - {"rw", "ro", "relatime"}
                mounts.append((1, controllers, _unescape(fields[3]), mount))
    return mounts


def own_cgroup(controller: str) -> Path | None:
    """The directory of this process's cgroup for CONTROLLER ("" for the v2 hierarchy)."""
    own: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in _read(Path("/proc/self/cgroup")).splitlines():
            _, names, path = line.split(":", 2)
            for name in names.split(",") if names else [""]:
                own[name] = path
    if controller not in own:
        return None
    for version, controllers, root, mount in cgroup_mounts():
        if (controller == "" and version == 2) or controller in controllers:
            relative = os.path.relpath(own[controller], root)
            if relative.startswith(".."):
                return None  # our cgroup is outside what this mount shows
            return mount if relative == "." else mount / relative
    return None


def _prepare_v2(
    enforcement: Enforcement, name: str, res: Resources, parent: str | None, notes: list[str]
) -> bool:
    """Make a v2 group under PARENT (or our own cgroup) when it can hand controllers down."""
    base = Path(parent) if parent else own_cgroup("")
    if base is None:
        return False
    wanted = ({"memory"} if res.memory else set()) | ({"cpu"} if res.cpus else set())
    try:
        available = set(_read(base / "cgroup.controllers").split())
    except OSError:
        return False
    if not wanted & available:
        notes.append(f"cgroup v2: {base} offers no {' or '.join(sorted(wanted))} controller; "
                     f"{PARENT_HINT}")  # fmt: skip
        return False
    enabled = set(_read(base / "cgroup.subtree_control").split())
    for controller in sorted((wanted & available) - enabled):
        try:
            _write(base / "cgroup.subtree_control", f"+{controller}")
        except OSError as exc:
            why = ("it holds processes, and a cgroup v2 group with processes cannot hand "
                   "controllers to children" if exc.errno == errno.EBUSY else exc.strerror)  # fmt: skip
            notes.append(f"cgroup v2: cannot enable {controller} in {base}: {why}; {PARENT_HINT}")
    enabled = wanted & set(_read(base / "cgroup.subtree_control").split())
    if not enabled:
        return False
    group = base / name
    try:
        _fresh_group(group)
        configure_v2(group, res, enabled, enforcement.notes)
    except OSError as exc:
        notes.append(f"cgroup v2: cannot set up {group}: {exc.strerror}")
        _remove_cgroup(group, time.monotonic())
        return False
    enforcement.cgroup, enforcement.cgroup_version = str(group), 2
    enforcement.kernel_memory = "memory" in enabled
    enforcement.kernel_cpu = "cpu" in enabled
    return True


def configure_v2(group: Path, res: Resources, enabled: set[str], notes: list[str]) -> None:
    """Write RES into the v2 GROUP's interface files for the ENABLED controllers."""
    if res.memory and "memory" in enabled:
        _write(group / "memory.max", str(res.memory))
        try:
            _write(group / "memory.swap.max", "0")  # the limit is the limit: no swap beyond it
        except FileNotFoundError:
            notes.append("cgroup v2: swap is not limited (no swap accounting)")
        # One process killed leaves the rest half-working; end the whole session instead.
        _write(group / "memory.oom.group", "1")
    if res.cpus and "cpu" in enabled:
        _write(group / "cpu.max", f"{_quota(res.cpus)} {CPU_PERIOD_US}")


def _prepare_v1(enforcement: Enforcement, name: str, res: Resources) -> None:
    """Make v1 memory and cpu groups under our own, where those controllers are mounted."""
    for controller, wanted in (("memory", res.memory), ("cpu", res.cpus)):
        if not wanted:
            continue
        base = own_cgroup(controller)
        if base is None:
            continue  # not a v1 host, or not for this controller
        group = base / name
        try:
            _fresh_group(group)
            configure_v1(group, controller, res, enforcement.notes)
        except OSError as exc:
            enforcement.notes.append(f"cgroup v1: cannot set up {group}: {exc.strerror}")
            _remove_cgroup(group, time.monotonic())
            continue
        enforcement.cgroup_version = 1
        if controller == "memory":
            enforcement.cgroup, enforcement.kernel_memory = str(group), True
        else:
            enforcement.cpu_cgroup, enforcement.kernel_cpu = str(group), True


def configure_v1(group: Path, controller: str, res: Resources, notes: list[str]) -> None:
    """Write RES into the v1 GROUP of CONTROLLER."""
    if controller == "memory" and res.memory:
        limit = str(res.memory)
        memsw = group / "memory.memsw.limit_in_bytes"
        if memsw.exists():
            # memory+swap may never be below memory, so whichever is raised goes first.
            with contextlib.suppress(OSError):
                _write(memsw, limit)
            _write(group / "memory.limit_in_bytes", limit)
            _write(memsw, limit)
        else:
            _write(group / "memory.limit_in_bytes", limit)
            with contextlib.suppress(OSError):
                _write(group / "memory.swappiness", "0")
            notes.append("cgroup v1: swap is only discouraged (no memory.memsw: swap "
                         "accounting is off)")  # fmt: skip
        notes.append("cgroup v1: the kernel kills one process when the limit is hit; the "
                     "watchdog then ends the rest of the tree")  # fmt: skip
    elif controller == "cpu" and res.cpus:
        _write(group / "cpu.cfs_period_us", str(CPU_PERIOD_US))
        _write(group / "cpu.cfs_quota_us", str(_quota(res.cpus)))


def _quota(cpus: float) -> int:
    return max(1000, int(cpus * CPU_PERIOD_US))  # the kernel refuses quotas under 1 ms


def _fresh_group(group: Path) -> None:
    """Make GROUP empty and new, so no count (oom_kill above all) is left from an earlier run."""
    if group.exists():
        _remove_cgroup(group, time.monotonic() + 0.5)
    group.mkdir()


def _remove_cgroup(group: Path, deadline: float) -> None:
    """Kill what is left in GROUP and remove it (best effort until DEADLINE)."""
    with contextlib.suppress(OSError):
        _write(group / "cgroup.kill", "1")  # v2 since 5.14: kills atomically, forks included
    while True:
        try:
            pids = [int(p) for p in _read(group / "cgroup.procs").split()]
        except (OSError, ValueError):
            pids = []
        if not pids:
            try:
                group.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                pass  # EBUSY while the kernel finishes tearing the last task down
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() >= deadline:
            return
        time.sleep(0.01)


# -- processes ---------------------------------------------------------------------------------


def _choose_cpus(session_id: str, cpus: float | None) -> list[int]:
    """ceil(CPUS) of our CPUs, the ones fewest other sessions are pinned to; [] for all."""
    _pinned.pop(session_id, None)
    if not cpus:
        return []
    allowed = sorted(os.sched_getaffinity(0))
    count = math.ceil(cpus)
    if count >= len(allowed):
        return []
    load = dict.fromkeys(allowed, 0)
    for pins in _pinned.values():
        for cpu in pins:
            if cpu in load:
                load[cpu] += 1
    chosen = sorted(sorted(allowed, key=lambda cpu: (load[cpu], cpu))[:count])
    _pinned[session_id] = chosen
    return chosen


def _children_map(root_pid: int) -> dict[int, list[int]]:
    """Parent pid -> child pids, for the processes that may be under ROOT_PID."""
    children: dict[int, list[int]] = {}
    # /proc/PID/task/TID/children is cheap but needs CONFIG_PROC_CHILDREN; scan ppids otherwise.
    if Path(f"/proc/{root_pid}/task/{root_pid}/children").exists():
        pending = [root_pid]
        while pending:
            pid = pending.pop()
            with contextlib.suppress(OSError):
                for task in os.listdir(f"/proc/{pid}/task"):
                    kids = [
                        int(k) for k in _read(Path(f"/proc/{pid}/task/{task}/children")).split()
                    ]
                    children.setdefault(pid, []).extend(kids)
                    pending.extend(kids)
        return children
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int(_read(Path(f"/proc/{entry}/stat")).rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    return children


def _alive(pid: int) -> bool:
    try:
        state = _read(Path(f"/proc/{pid}/stat")).rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _process_memory(pid: int) -> int:
    """Bytes of memory PID uses: its PSS, else its RSS."""
    # PSS splits pages shared between forks among them; summing RSS would count them once per
    # process and end a session that is within its limit.
    try:
        for line in _read(Path(f"/proc/{pid}/smaps_rollup")).splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(_read(Path(f"/proc/{pid}/statm")).split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


# -- files -------------------------------------------------------------------------------------


def _read(path: Path) -> str:
    with open(path) as f:
        return f.read()


def _write(path: Path, value: str) -> None:
    # No O_CREAT: a missing interface file means the kernel lacks the feature, and must fail.
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _counters(path: Path) -> dict[str, int]:
    """`name N` lines (memory.events, memory.oom_control) as a dict."""
    counts = {}
    for line in _read(path).splitlines():
        name, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            counts[name] = int(value)
    return counts


def _unescape(text: str) -> str:
    """Undo mountinfo's octal escapes (a space is written \\040)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)
