"""`%catty` magics and their widgets, in notebooks executed by nbclient against a real server."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.servers import LiveServer

from .conftest import dumps, html_under, notebook_project, run_notebook, text_of, widget_states

WAIT_FOR_TURNS = '''
import time
def wait_turns(view, n, timeout=150):
    """Until N turns of VIEW's session ended and the widget has drawn every event."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        evs = view.client.transcript(view.label, limit=5000)
        if sum(e["kind"] == "result" for e in evs) >= n and view.last_seq >= evs[-1]["seq"]:
            return evs
        time.sleep(0.3)
    raise AssertionError(f"{view.label}: {n} turns not done: {[e['kind'] for e in evs]}")
'''


def _view_state(nb: Any, label: str) -> tuple[dict[str, Any], str]:
    """The saved state of LABEL's transcript widget, and all the HTML shown inside it."""
    states = widget_states(nb)
    views = [(mid, s) for mid, s in states.items() if s.get("label") == label and "last_seq" in s]
    assert views, f"no transcript widget for {label} in the saved widget state: {list(states)[:20]}"
    mid, state = views[0]
    return state, html_under(states, mid)


@pytest.mark.claude
def test_new_send_diff_stop_with_the_demo_model(server: LiveServer, tmp_path: Path) -> None:
    """`%catty new` starts a real Claude Code session on the notebook's repository, its widget
    fills in live, `send` reaches the agent, `diff` shows its change, `stop` stops it."""
    repo = notebook_project(tmp_path)
    nb = run_notebook([
        "%load_ext catty_jupyter",
        "%catty",
        "%%catty new --env demo\n!say hello from <img src=x onerror=alert(1)> the notebook\n"
        "!say and from a second line",
        "view = _\nlabel = view.label\n" + WAIT_FOR_TURNS + "first = wait_turns(view, 1)",
        "%catty send {label} !bash echo changed-by-agent >> README.md",
        "second = wait_turns(view, 2)",
        "d = %catty diff {label}\nprint(d.files_changed, d.added, d.removed)\nd",
        "%catty list",
        "%catty stop {label}",
        "print(view.client.get(label)['state'])",
    ], cwd=repo)  # fmt: skip

    usage, created = text_of(nb.cells[1]), text_of(nb.cells[2])
    assert "%catty new" in usage and "%%catty setup ENV" in usage
    label = created.split()[0]
    assert "(environment demo, a copy of" in created, created

    sessions = {s["label"]: s for s in server.request("GET", "sessions")["sessions"]}
    assert label in sessions, f"{label} not among {list(sessions)}"
    evs = server.request("GET", f"sessions/{label}/transcript?limit=5000")["events"]
    users = [e["payload"]["text"] for e in evs if e["kind"] == "user"]
    assert users[0].startswith("!say hello") and users[1].startswith("!bash echo changed"), users
    assert users[0].endswith("!say and from a second line"), users  # the cell's body, whole

    # The widget kept itself up to date from a background thread: its saved state holds
    # every event up to the second turn's end, and the reply is there, as text.
    state, shown = _view_state(nb, label)
    last_result = max(e["seq"] for e in evs if e["kind"] == "result")
    assert state["last_seq"] >= last_result, (state["last_seq"], last_result)
    assert "(demo model)" in shown and "hello from" in shown and "from a second line" in shown
    assert "&lt;img src=x onerror=alert(1)&gt;" in shown
    assert "<img" not in shown
    assert "changed-by-agent" in shown  # the tool call of the second turn, with its input

    assert "1 1 0" in text_of(nb.cells[6]), dumps(nb)
    assert "README.md" in text_of(nb.cells[6]) or "+1 -0" in text_of(nb.cells[6])
    assert label in text_of(nb.cells[7])
    assert "stopped" in text_of(nb.cells[9]), dumps(nb)
    assert server.request("GET", f"sessions/{label}")["state"] == "stopped"


def test_setup_cell_magic_and_environment_editor(server: LiveServer, tmp_path: Path) -> None:
    """`%%catty setup ENV` makes the cell ENV's setup script; `%catty env` lists environments;
    the editor saves through the API and shows a refusal next to its field."""
    nb = run_notebook([
        "%load_ext catty_jupyter",
        "%%catty setup nbenv\necho from-the-notebook > /tmp/marker\n",
        "%catty env",
        "%%catty setup nbenv\necho changed\npip --version\n",
        "ed = %catty env nbenv\n"
        "ed.set_value('env', 'GOOD=1\\nthis line is wrong\\n')\n"
        "ed.save_button.click()\n"
        "import time\n"
        "for _ in range(100):\n"
        "    if ed.errors['env'].value: break\n"
        "    time.sleep(0.1)\n"
        "print('ENV-ERROR', ed.errors['env'].value)\n"
        "print('SAVED', repr(ed.saved))",
        "ed.set_value('env', 'GOOD=1\\nTOKEN=abc123\\n')\n"
        "ed.set_value('secrets', 'TOKEN')\n"
        "ed.set_value('network', 'none')\n"
        "ed.save()\n"
        "print('SAVED', ed.saved, ed.value('env'))",
        "%catty",
        "%catty frobnicate",
        "%catty show",
        "%catty setup x",
        "%%catty list\nbody",
    ], cwd=tmp_path)  # fmt: skip

    assert "setup script created (1 lines)" in text_of(nb.cells[1]), dumps(nb)
    listing = text_of(nb.cells[2])
    assert "nbenv" in listing and "demo" in listing and "default" in listing
    assert "setup script updated (2 lines)" in text_of(nb.cells[3])
    env = server.request("GET", "environments/nbenv")
    assert env["setup_script"] == "echo changed\npip --version\n"

    refused = text_of(nb.cells[4])
    assert "line 2" in refused and "SAVED ''" in refused, refused
    saved = text_of(nb.cells[5])
    assert "SAVED updated" in saved and "TOKEN=********" in saved and "abc123" not in saved
    env = server.request("GET", "environments/nbenv")
    assert env["network"] == "none" and env["secrets"] == ["TOKEN"]

    for cell in nb.cells[6:]:
        assert "%catty new" in text_of(cell), text_of(cell)  # usage, for each wrong use
    assert "invalid choice: 'frobnicate'" in text_of(nb.cells[7])
    assert "cell magic" in text_of(nb.cells[9])
    assert "is a line magic" in text_of(nb.cells[10])


def test_session_list_and_shell_transcript(server: LiveServer, tmp_path: Path) -> None:
    """The session list shows a session with its actions; a shell session's transcript widget
    shows a command's output as text, including after the cell that opened it finished."""
    nb = run_notebook([
        "%load_ext catty_jupyter",
        "view = %catty new --agent shell --empty echo '<b>not bold</b>'\nlabel = view.label\nview",
        WAIT_FOR_TURNS + "wait_turns(view, 1)",
        "%catty send {label} echo second-turn",
        "wait_turns(view, 2); print(view.activity)",
        "sl = %catty list\nprint(sl.count)\nsl",
        "sl.show(label); print(type(sl.detail.children[0]).__name__)",
        "%catty download {label} -o ws.tar.gz",
    ], cwd=tmp_path)  # fmt: skip
    label = text_of(nb.cells[1]).split()[0]
    state, shown = _view_state(nb, label)
    assert state["activity"] == "idle", state
    assert "&lt;b&gt;not bold&lt;/b&gt;" in shown and "<b>not bold" not in shown
    assert "second-turn" in shown
    assert "idle" in text_of(nb.cells[4])
    listing = text_of(nb.cells[5])
    assert listing.startswith("1") and label in listing, listing
    assert "TranscriptView" in text_of(nb.cells[6])
    assert "saved ws.tar.gz" in text_of(nb.cells[7])
    with tarfile.open(tmp_path / "ws.tar.gz") as archive:
        assert any(name.endswith(".git/HEAD") for name in archive.getnames())
