"""Notebooks on the Catty kernel, executed with nbclient: each cell's outputs are the agent's reply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.servers import LiveServer

from .kernels import label_in

XSS = "<img src=x onerror=alert(1)>"


def execute(cells: list[str], cwd: Path) -> list[Any]:
    """Run CELLS in a new notebook on the Catty kernel; return the executed cells."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = NotebookClient(nb, kernel_name="catty", timeout=120,
                            resources={"metadata": {"path": str(cwd)}})  # fmt: skip
    client.execute()
    return list(nb.cells)


def data(cell: Any, mimetype: str) -> list[str]:
    """The cell's outputs of MIMETYPE (streams count as text/plain)."""
    found = []
    for out in cell.outputs:
        if out.output_type == "stream" and mimetype == "text/plain":
            found.append(out.text)
        elif mimetype in out.get("data", {}):
            found.append(out.data[mimetype])
    return found


@pytest.mark.claude
def test_cells_are_messages_and_outputs_the_replies_of_claude_code(
    served: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CATTY_KERNEL_ENVIRONMENT", "demo")
    first, second = "!say hello from the demo", "!say and hello again"
    cells = execute([f"%new {first}", second], tmp_path)

    label = label_in("".join(data(cells[0], "text/plain")))
    for cell, reply in zip(cells, ["hello from the demo", "and hello again"], strict=True):
        assert any(f"(demo model) {reply}" in text for text in data(cell, "text/plain")), cell
        assert any(f"(demo model) {reply}</p>" in html for html in data(cell, "text/html")), cell
    # The second cell shows its own turn, not the first one again.
    assert not any("hello from the demo" in t for t in data(cells[1], "text/plain"))

    sessions = {s["label"]: s for s in served.request("GET", "sessions")["sessions"]}
    assert sessions[label]["environment"] == "demo"
    assert sessions[label]["state"] == "running"
    events = served.request("GET", f"sessions/{label}/transcript?limit=5000")["events"]
    users = [e["payload"]["text"] for e in events if e["kind"] == "user"]
    assert users == [first, second]


def test_agent_output_is_escaped_in_html_and_readable_as_text(
    served: LiveServer, tmp_path: Path
) -> None:
    cells = execute(["%new --agent shell echo hi-from-shell", f"echo '{XSS}'"], tmp_path)

    assert any("hi-from-shell" in t for t in data(cells[0], "text/plain"))
    html = data(cells[1], "text/html")
    # The tool's output was filled into the tool call's output (update_display_data).
    assert any("<pre>&lt;img src=x onerror=alert(1)&gt;\n</pre>" in h for h in html), html
    assert not any("<img" in h for h in html)
    assert any(f"\n{XSS}" in t for t in data(cells[1], "text/plain"))
    label = label_in("".join(data(cells[0], "text/plain")))
    assert served.request("GET", f"sessions/{label}")["agent"] == "shell"
