"""The demo notebook a newcomer opens runs from top to bottom against a real server."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tests.servers import LiveServer

from .conftest import dumps, run_notebook, text_of

DEMO = Path(__file__).resolve().parents[2] / "notebooks" / "catty-demo.ipynb"

WAIT = """
import time
for _ in range(600):
    evs = view.client.transcript(view.label, limit=5000)
    if any(e["kind"] == "result" for e in evs) and view.last_seq >= evs[-1]["seq"]:
        break
    time.sleep(0.25)
"""


@pytest.mark.claude
def test_the_demo_notebook_runs(server: LiveServer, tmp_path: Path) -> None:
    """Every code cell runs without an error; the tour's file shows in the diff, the thanks
    reaches the agent, and the setup cell makes an environment."""
    cells = [c.source for c in nbformat.read(DEMO, as_version=4).cells if c.cell_type == "code"]
    new = next(i for i, src in enumerate(cells) if "%catty new" in src)
    # A person waits for the badge to say idle before looking at the diff; so does the test.
    cells.insert(new + 1, WAIT)
    nb = run_notebook(cells, cwd=tmp_path)
    out = [text_of(c) for c in nb.cells]
    assert "%catty new" in out[0]
    label = out[new].split()[0]
    diff = next(t for t in out if t.startswith("catty diff"))
    assert diff.startswith(f"catty diff {label}: 1 files, +"), dumps(nb)  # the tour's note
    evs = server.request("GET", f"sessions/{label}/transcript?limit=5000")["events"]
    assert any(e["kind"] == "user" and "Thanks for the tour" in e["payload"]["text"] for e in evs)
    assert "pip install" in server.request("GET", "environments/my-env")["setup_script"]
