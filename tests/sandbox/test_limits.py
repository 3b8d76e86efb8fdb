"""Resource limits: a session that goes over its memory is caught and ended, its neighbours are
not; its CPUs, file sizes and cgroup are what the environment asked for."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from catty_jupyter.core.environments import Resources
from catty_jupyter.sandbox import limits

MB = 1 << 20

# What the real launcher does, in miniature: enter the limits, then become the command.
LAUNCHER = """\
import json, os, sys
from catty_jupyter.sandbox import limits
limits.enter(limits.Enforcement.from_json(json.loads(sys.argv[1])))
os.execvp(sys.argv[2], sys.argv[2:])
"""

# Takes 8 MB more every 20 ms up to 480 MB, then idles; bounded so a broken watchdog cannot
# take the machine down with it.
HOG = """\
import time
hoard = []
for _ in range(60):
    hoard.append(b"x" * (8 << 20))
    time.sleep(0.02)
time.sleep(60)
"""

BUSY = """\
import time
end = time.time() + 0.8
while time.time() < end:
    pass
print(time.process_time())
"""

PRINT_AFFINITY = "import os; print(sorted(os.sched_getaffinity(0)))"


def launch(enforcement: limits.Enforcement, *argv: str) -> subprocess.Popen[str]:
    """Start ARGV under ENFORCEMENT the way the launcher does."""
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, json.dumps(enforcement.to_json()), *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _launched.append(proc)
    return proc


_launched: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def end_launched_trees(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Give the hog its code; end every tree a test started, even when the test failed."""
    monkeypatch.setenv("HOG", HOG)
    yield
    while _launched:
        proc = _launched.pop()
        limits.kill_tree(proc.pid)
        proc.communicate()


def run(enforcement: limits.Enforcement, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ARGV under ENFORCEMENT to its end."""
    proc = launch(enforcement, *argv)
    out, err = proc.communicate(timeout=10)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture
def session_id() -> Iterator[str]:
    """A fresh session id; whatever was prepared for it is released afterwards."""
    sid = f"test-{uuid.uuid4().hex[:12]}"
    yield sid
    for base in (limits.own_cgroup("memory"), limits.own_cgroup("cpu"), limits.own_cgroup("")):
        if base is not None and (base / f"{limits.CGROUP_PREFIX}{sid}").exists():
            limits.release(limits.Enforcement(cgroup=str(base / f"{limits.CGROUP_PREFIX}{sid}")))


@pytest.fixture
def sibling() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process that must outlive any session's end."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def watch(enforcement: limits.Enforcement, pid: int, limit: int) -> limits.MemoryReading:
    """Read memory as the server's watchdog does until it reports trouble (or 10 s pass)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reading = limits.memory_reading(enforcement, pid, limit)
        if reading.over or reading.oom_killed:
            return reading
        time.sleep(0.1)
    raise AssertionError(f"the watchdog never saw the session go over {limit} bytes")


def hog_tree(enforcement: limits.Enforcement) -> subprocess.Popen[str]:
    """A session tree: a shell whose child eats memory, and which lives on if that child dies."""
    return launch(enforcement, "sh", "-c", f'{sys.executable} -c "$HOG"; sleep 60')


def test_a_session_over_its_memory_is_caught_and_only_it_is_killed(
    session_id: str, sibling: subprocess.Popen[bytes]
) -> None:
    limit = 80 * MB
    enforcement = limits.prepare(session_id, Resources(memory=limit))
    proc = hog_tree(enforcement)

    reading = watch(enforcement, proc.pid, limit)
    if enforcement.kernel_memory:
        assert reading.oom_killed, "the kernel should have killed the hog inside the cgroup"
        assert reading.used <= limit
    else:
        assert reading.over and reading.used > limit
    assert proc.poll() is None, "the shell outlives its child: the tree needs ending"

    limits.kill_tree(proc.pid)
    assert proc.wait(timeout=5) == -signal.SIGKILL
    assert limits.tree_pids(proc.pid) == []
    assert sibling.poll() is None

    limits.release(enforcement)
    if enforcement.cgroup:
        assert not Path(enforcement.cgroup).exists()


def test_without_a_cgroup_the_watchdog_sums_the_whole_tree(
    session_id: str, sibling: subprocess.Popen[bytes]
) -> None:
    limit = 80 * MB
    enforcement = limits.Enforcement(session_id=session_id)  # what a host without cgroups gets
    proc = hog_tree(enforcement)

    reading = watch(enforcement, proc.pid, limit)
    assert reading.over and not reading.oom_killed
    tree = limits.tree_pids(proc.pid)
    assert len(tree) == 2, "the shell and the hog it started"
    assert reading.used > limit

    limits.kill_tree(proc.pid)
    assert proc.wait(timeout=5) == -signal.SIGKILL
    deadline = time.monotonic() + 5  # SIGKILL is sent; freeing 80+ MB takes a moment
    while any(limits.tree_pids(pid) for pid in tree) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(limits.tree_pids(pid) for pid in tree)
    assert sibling.poll() is None


def test_the_session_runs_in_its_cgroup_and_release_removes_it(session_id: str) -> None:
    enforcement = limits.prepare(session_id, Resources(memory=256 * MB, cpus=0.5))
    if not enforcement.cgroup and not enforcement.cpu_cgroup:
        pytest.skip(f"this host gives sessions no cgroup: {'; '.join(enforcement.notes)}")
    proc = launch(enforcement, "sleep", "60")
    deadline = time.monotonic() + 5
    groups = [g for g in (enforcement.cgroup, enforcement.cpu_cgroup) if g]
    while time.monotonic() < deadline:
        if all(str(proc.pid) in Path(g, "cgroup.procs").read_text().split() for g in groups):
            break
        time.sleep(0.02)
    else:
        raise AssertionError(f"pid {proc.pid} never joined {groups}")

    limits.release(enforcement)  # with the session still running: it must be killed first
    assert proc.wait(timeout=5) == -signal.SIGKILL
    for group in groups:
        assert not Path(group).exists()


def test_the_cpu_quota_holds_a_busy_session_to_its_share(session_id: str) -> None:
    enforcement = limits.prepare(session_id, Resources(cpus=0.5))
    if not enforcement.kernel_cpu:
        pytest.skip(f"this host has no cgroup cpu controller: {'; '.join(enforcement.notes)}")
    result = run(enforcement, sys.executable, "-c", BUSY)
    limits.release(enforcement)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) < 0.8 * 0.7, "half a CPU for 0.8 s is about 0.4 s of CPU time"


def test_the_session_runs_on_the_cpus_chosen_for_it(session_id: str) -> None:
    host_cpus = sorted(os.sched_getaffinity(0))
    if len(host_cpus) < 2:
        pytest.skip(f"pinning needs two CPUs; this host lets us use {host_cpus}")
    first = limits.prepare(session_id, Resources(cpus=1))
    second = limits.prepare(session_id + "-b", Resources(cpus=1))
    try:
        assert len(first.cpus) == 1 and len(second.cpus) == 1
        assert first.cpus != second.cpus, "two one-CPU sessions should not share a CPU"
        result = run(first, sys.executable, "-c", PRINT_AFFINITY)
        assert json.loads(result.stdout) == first.cpus
    finally:
        limits.release(first)
        limits.release(second)
    # A session that may use every CPU is not pinned at all.
    assert limits.prepare(session_id, Resources(cpus=len(host_cpus))).cpus == []


def test_a_file_larger_than_the_disk_limit_cannot_be_written(
    session_id: str, tmp_path: Path
) -> None:
    enforcement = limits.prepare(session_id, Resources(disk=1 * MB))
    big = tmp_path / "big"
    result = run(enforcement, "sh", "-c", f"head -c {2 * MB} /dev/zero > {big}")
    assert result.returncode != 0
    assert "File too large" in result.stderr
    assert big.stat().st_size == 1 * MB


def test_disk_usage_counts_blocks_once(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "data").write_bytes(os.urandom(1 * MB))
    os.link(work / "data", work / "data-again")
    outside = tmp_path / "outside"
    outside.write_bytes(os.urandom(4 * MB))
    (work / "link").symlink_to(outside)
    with open(work / "sparse", "wb") as f:
        f.truncate(100 * MB)

    used = limits.disk_usage(work, work)
    assert 1 * MB <= used < 1 * MB + 64 * 1024
    assert limits.disk_usage(work, outside) >= 5 * MB
    assert limits.disk_usage(tmp_path / "missing") == 0


def test_enforcement_travels_as_json() -> None:
    enforcement = limits.Enforcement(
        session_id="s", cgroup="/sys/fs/cgroup/x", cgroup_version=2, cpus=[1],
        rlimits={"RLIMIT_FSIZE": 5}, kernel_memory=True, notes=["why"],
    )  # fmt: skip
    data = json.loads(json.dumps(enforcement.to_json()))
    assert limits.Enforcement.from_json({**data, "added_later": 1}) == enforcement


def test_cgroup_v2_interface_files(tmp_path: Path) -> None:
    """Exercises what we write to and read from a cgroup v2 group.

    Real cgroup v2 memory/cpu controllers are checked by the test below when the host delegates
    them; this host may not (then these plain files, named like the kernel's, stand in for them).
    """
    for name in ("memory.max", "memory.swap.max", "memory.oom.group", "cpu.max"):
        (tmp_path / name).write_text("max\n")
    notes: list[str] = []
    limits.configure_v2(tmp_path, Resources(cpus=1.5, memory=512 * MB), {"memory", "cpu"}, notes)
    assert (tmp_path / "memory.max").read_text() == str(512 * MB)
    assert (tmp_path / "memory.swap.max").read_text() == "0"
    assert (tmp_path / "memory.oom.group").read_text() == "1"
    assert (tmp_path / "cpu.max").read_text() == f"150000 {limits.CPU_PERIOD_US}"

    (tmp_path / "memory.current").write_text(f"{300 * MB}\n")
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 0\n")
    enforcement = limits.Enforcement(cgroup=str(tmp_path), cgroup_version=2, kernel_memory=True)
    reading = limits.memory_reading(enforcement, os.getpid(), 512 * MB)
    assert (reading.used, reading.oom_killed, reading.over) == (300 * MB, False, False)
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n")
    assert limits.memory_reading(enforcement, os.getpid(), 512 * MB).oom_killed


def test_cgroup_v2_is_used_when_delegated_or_its_absence_explained(session_id: str) -> None:
    base = limits.own_cgroup("")
    controllers = (base / "cgroup.controllers").read_text().split() if base else []
    if "memory" not in controllers:
        pytest.skip(f"cgroup v2 at {base} offers no memory controller (it offers {controllers})")
    enforcement = limits.prepare(session_id, Resources(memory=256 * MB))
    try:
        if enforcement.cgroup_version == 2:
            assert Path(enforcement.cgroup or "", "memory.max").read_text().strip() == str(256 * MB)
        else:
            assert any(n.startswith("cgroup v2:") for n in enforcement.notes), enforcement.notes
    finally:
        limits.release(enforcement)


def test_a_relaunched_session_starts_with_a_clean_cgroup(session_id: str) -> None:
    limit = 64 * MB
    enforcement = limits.prepare(session_id, Resources(memory=limit))
    if not enforcement.kernel_memory:
        pytest.skip(f"this host has no cgroup memory limit: {'; '.join(enforcement.notes)}")
    proc = hog_tree(enforcement)
    assert watch(enforcement, proc.pid, limit).oom_killed
    limits.kill_tree(proc.pid)
    proc.wait(timeout=5)
    # The server crashed before release(): the next launch must not inherit the OOM count.
    again = limits.prepare(session_id, Resources(memory=limit))
    assert again.cgroup == enforcement.cgroup
    assert not limits.memory_reading(again, os.getpid(), limit).oom_killed
    limits.release(again)
