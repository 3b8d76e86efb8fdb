"""`%catty teleport` in a notebook: refused while the repository has uncommitted changes, then
*Stash and teleport* brings the branch and shows the session's transcript."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import git
from tests.servers import LiveServer

from .conftest import dumps, html_under, notebook_project, run_notebook, text_of, widget_states
from .test_magics import WAIT_FOR_TURNS

CHANGE = "echo from-the-agent >> README.md && printf 'x\\n' > agent.txt"

WAIT_FOR_PANEL = """
import time
p.stash_button.click()
deadline = time.time() + 60
while p.outcome != "done" and time.time() < deadline:
    time.sleep(0.2)
print("OUTCOME", p.outcome, p.result.branch if p.result else None)
"""


def test_teleport_stops_for_uncommitted_changes_then_the_button_stashes(
    server: LiveServer, tmp_path: Path
) -> None:
    repo = notebook_project(tmp_path)
    nb = run_notebook([
        "%load_ext catty_jupyter",
        f"%catty new --agent shell {CHANGE}",
        "view = _\nlabel = view.label\n" + WAIT_FOR_TURNS + "wait_turns(view, 1)\n"
        "open('mine.txt', 'w').write('my own work in progress')",
        "p = %catty teleport {label}\nprint('OUTCOME', p.outcome)\nprint(p.reason.value)\np",
        WAIT_FOR_PANEL,
        "p",
        "%catty teleport no-such-label-0000",
        "%catty",
    ], cwd=repo)  # fmt: skip

    label = text_of(nb.cells[1]).split()[0]
    refused = text_of(nb.cells[3])
    assert "OUTCOME uncommitted" in refused, dumps(nb)
    assert "mine.txt" in refused and "uncommitted changes" in refused  # why it stopped
    assert f"OUTCOME done catty/{label}" in text_of(nb.cells[4]), dumps(nb)
    assert git(repo, "branch", "--show-current").strip() == f"catty/{label}"
    assert f"catty: before teleport of {label}" in git(repo, "stash", "list")
    assert (repo / "agent.txt").read_text() == "x\n" and not (repo / "mine.txt").exists()

    states = widget_states(nb)
    panels = [mid for mid, s in states.items() if s.get("outcome") == "done"]
    assert panels, dumps(nb)
    shown = html_under(states, panels[0])
    assert f"catty/{label}" in shown and "stash@{0}" in shown and "git stash pop" in shown
    assert "checked out" in shown  # the steps, as they happened
    buttons = [s for s in states.values() if s.get("description") == "Stash and teleport"]
    assert buttons, "no Stash and teleport button was shown"
    # The session's transcript, whole, below: the command and its turn.
    views = [mid for mid, s in states.items() if s.get("label") == label and "last_seq" in s]
    assert views and "from-the-agent" in html_under(states, views[-1])

    assert "no-such-label-0000" in text_of(nb.cells[6]), dumps(nb)
    assert "%catty teleport LABEL [--stash]" in text_of(nb.cells[7])
