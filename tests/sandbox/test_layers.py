"""Overlay layers, mounted for real by the launcher in a private mount namespace."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from catty_jupyter.sandbox.launcher import LaunchPlan
from catty_jupyter.sandbox.layers import prepare_dirs, system_layers


@pytest.fixture
def data_under_var() -> Iterator[Path]:
    """A data directory under /var/tmp, as a system-wide install might have under /var/lib."""
    path = Path(tempfile.mkdtemp(prefix="catty-layers-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_data_directory_under_var_is_layered_around(data_under_var: Path) -> None:
    layers = system_layers(data_under_var / "up", keep_out=data_under_var)
    targets = [layer.target for layer in layers]
    assert "/usr" in targets and "/var" not in targets and "/var/lib" in targets
    assert not any(data_under_var.is_relative_to(t) for t in targets)
    assert all(not Path(t).is_symlink() for t in targets)


def test_writes_land_in_the_upper_layer_and_not_on_the_host(data_under_var: Path) -> None:
    uppers = data_under_var / "up"
    layers = system_layers(uppers, keep_out=data_under_var)
    prepare_dirs(layers)
    marker = f"catty-layer-test-{data_under_var.name}"
    command = LaunchPlan(layers=layers).command(
        [
            "sh",
            "-c",
            f"echo written > /opt/{marker} && echo x > /var/lib/{marker} && cat /opt/{marker}",
        ]
    )
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "written"
    assert (uppers / "opt" / marker).read_text() == "written\n"
    assert (uppers / "var/lib" / marker).exists()
    assert not Path("/opt", marker).exists() and not Path("/var/lib", marker).exists()


def test_a_snapshot_shows_below_the_sessions_own_layer(data_under_var: Path) -> None:
    snapshot = data_under_var / "snap"
    (snapshot / "opt" / "tool").mkdir(parents=True)
    (snapshot / "opt" / "tool" / "version").write_text("from-snapshot\n")
    uppers = data_under_var / "session"
    layers = system_layers(uppers, snapshot, keep_out=data_under_var)
    prepare_dirs(layers)
    command = LaunchPlan(layers=layers).command(
        ["sh", "-c", "cat /opt/tool/version; echo mine > /opt/tool/version; cat /opt/tool/version"]
    )
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.stdout.split() == ["from-snapshot", "mine"], result.stderr
    assert (snapshot / "opt" / "tool" / "version").read_text() == "from-snapshot\n"
    assert (uppers / "opt" / "tool" / "version").read_text() == "mine\n"
