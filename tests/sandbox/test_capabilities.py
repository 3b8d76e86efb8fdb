"""`jupyter catty doctor`'s probe: what this host can confine and limit, told plainly."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from catty_jupyter.sandbox import capabilities, limits

NAMES = [
    "bubblewrap", "user namespace", "PID namespace", "mount namespace", "network namespace",
    "overlayfs", "egress proxy", "memory limit", "CPU limit", "disk limit", "process limits",
]  # fmt: skip


@pytest.fixture(scope="module")
def caps() -> list[capabilities.Capability]:
    return capabilities.probe()


def test_probe_checks_everything_quickly() -> None:
    start = time.monotonic()
    caps = capabilities.probe()
    assert time.monotonic() - start < 2
    assert [c.name for c in caps] == NAMES
    for cap in caps:
        assert cap.how and cap.detail, cap


def test_bubblewrap_is_found_with_its_version(caps: list[capabilities.Capability]) -> None:
    path = shutil.which("bwrap")
    if path is None:
        pytest.skip("bubblewrap is not installed on this host")
    bwrap = caps[0]
    assert bwrap.available
    assert "bubblewrap" in bwrap.detail and path in bwrap.detail
    assert capabilities.summary(caps).startswith("Sessions can be sandboxed here")


def test_limits_report_how_this_host_enforces_them(caps: list[capabilities.Capability]) -> None:
    by_name = {c.name: c for c in caps}
    memory = by_name["memory limit"]
    assert memory.available
    base = limits.own_cgroup("memory")
    if base is not None and "cgroup" in memory.how:
        # The probe's own cgroup is gone again.
        assert not [p for p in base.iterdir() if p.name.startswith("catty-doctor")]
    elif "cgroup" not in memory.how:
        assert "watchdog" in memory.how
    assert by_name["disk limit"].available


def test_report_is_a_table_with_a_summary(caps: list[capabilities.Capability]) -> None:
    report = capabilities.format_report(caps)
    lines = report.rstrip("\n").splitlines()
    for name in NAMES:
        assert any(line.startswith(name) for line in lines), name
    # The "how" column starts at the same place on every row.
    column = lines[0].index("how enforced")
    for cap, line in zip(caps, lines[2:], strict=False):
        assert line[column:].startswith(cap.how), line
    assert lines[-1] == capabilities.summary(caps)
    assert f"of {len(NAMES)} checks passed" in lines[-1]


def test_report_json_is_plain_data(caps: list[capabilities.Capability]) -> None:
    data = json.loads(json.dumps(capabilities.report_json(caps)))
    assert [d["name"] for d in data] == NAMES
    assert set(data[0]) == {"name", "available", "how", "detail"}


def test_a_missing_sandbox_is_named_in_the_summary() -> None:
    caps = [capabilities.Capability("bubblewrap", False, "-", "not installed"),
            capabilities.EGRESS_PROXY]  # fmt: skip
    assert capabilities.summary(caps) == (
        "Sessions cannot be sandboxed here (bubblewrap unavailable); 1 of 2 checks passed."
    )
