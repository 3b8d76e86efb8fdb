"""`jupyter catty doctor`: what this machine can enforce, with no server running."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

EXPECTED = {"bubblewrap", "user namespace", "PID namespace", "mount namespace",
            "network namespace", "overlayfs", "egress proxy", "memory limit", "CPU limit",
            "disk limit", "process limits"}  # fmt: skip


def doctor(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI's doctor command in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "catty_jupyter.cli", "doctor", *args],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_doctor_reports_every_mechanism_and_whether_sessions_can_be_sandboxed() -> None:
    result = doctor("--json")
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert set(checks) == EXPECTED
    has_bwrap = shutil.which("bwrap") is not None
    assert checks["bubblewrap"]["available"] is has_bwrap
    assert result.returncode == (0 if has_bwrap else 1)
    for check in checks.values():
        assert check["how"], check  # each says how it is enforced (or what stands in)


def test_doctor_prints_a_table_a_person_can_read() -> None:
    result = doctor()
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[0] == "what"
    for name in EXPECTED:
        assert any(line.startswith(name) for line in lines), name
    assert "checks passed" in lines[-1]
