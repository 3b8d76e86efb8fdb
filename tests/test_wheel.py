"""The wheel carries the JupyterLab extension prebuilt: its build hook runs npm in labextension/."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".venv", "node_modules", "lib", "build", "dist", ".git", "*.egg-info",
                              "__pycache__", ".*_cache", "labextension")  # fmt: skip
"""What a fresh checkout does not have (the built extension included), and what is not needed."""


def test_the_wheel_ships_the_extension_built_from_source(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=SKIP)
    # labextension/ itself, minus what npm and tsc make.
    shutil.copytree(ROOT / "labextension", src / "labextension",
                    ignore=shutil.ignore_patterns("node_modules", "lib", "*.tsbuildinfo"))  # fmt: skip
    assert not (src / "catty_jupyter" / "labextension").exists()
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("catty_jupyter-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    prefix = next(n.split("/share/")[0] for n in names if "/share/jupyter/labextensions/" in n)
    ext = f"{prefix}/share/jupyter/labextensions/catty-jupyter/"
    assert f"{ext}package.json" in names
    assert f"{ext}install.json" in names
    assert f"{ext}schemas/catty-jupyter/plugin.json" in names
    assert any(n.startswith(f"{ext}static/remoteEntry.") for n in names), names
    # Shipped once, as shared data, not again inside the package.
    assert not any(n.startswith("catty_jupyter/labextension/") for n in names)
