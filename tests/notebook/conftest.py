"""Notebooks run by nbclient in a real IPython kernel against a real Jupyter server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import git
from tests.servers import LiveServer


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    """A running server with the demo model; kernels started here find it as the extension's
    own kernels do (CATTY_URL and CATTY_TOKEN in their environment)."""
    live = LiveServer(data_dir=tmp_path / "data", root_dir=tmp_path / "root").start()
    monkeypatch.setenv("CATTY_URL", live.url)
    monkeypatch.setenv("CATTY_TOKEN", live.token)
    try:
        yield live
    finally:
        live.stop()


def notebook_project(tmp_path: Path) -> Path:
    """A git repository with one commit under the server's root, where the notebooks run."""
    repo = tmp_path / "root" / "project"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# project\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


def run_notebook(cells: list[str], cwd: Path, timeout: int = 180) -> Any:
    """Execute CELLS in a fresh python3 kernel in CWD; return the executed notebook."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    client = NotebookClient(nb, kernel_name="python3", timeout=timeout, allow_errors=False,
                            resources={"metadata": {"path": str(cwd)}})  # fmt: skip
    client.execute()
    return nb


def text_of(cell: Any) -> str:
    """Everything a cell printed or showed, as one text (plain-text forms of rich outputs)."""
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif "data" in out:
            parts.append(str(out.data.get("text/plain", "")))
    return "".join(parts)


def widget_states(nb: Any) -> dict[str, dict[str, Any]]:
    """The widget models nbclient saved with the notebook, by model id."""
    saved = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    return {mid: m["state"] for mid, m in saved.get("state", {}).items()}


def html_under(states: dict[str, dict[str, Any]], model_id: str) -> str:
    """All HTML values of the widgets inside MODEL_ID (its children, recursively)."""
    state = states.get(model_id, {})
    found = [str(state["value"])] if state.get("_model_name") == "HTMLModel" else []
    for ref in state.get("children", []):
        found.append(html_under(states, str(ref).removeprefix("IPY_MODEL_")))
    return "\n".join(found)


def dumps(nb: Any) -> str:
    """The executed notebook as JSON text, for failure messages."""
    return json.dumps([c.get("outputs") for c in nb.cells], default=str)[:4000]
