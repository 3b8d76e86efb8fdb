"""`%catty new` in real JupyterLab, in headless Chromium: the transcript widget a user sees.

JupyterLab runs as its own process (LiveServer with the lab app), so the browser is driven with
playwright's async API only to share the Chromium helper of the mirror-page tests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.lab.labpage import LabPage
from tests.server.test_mirror_page import SCREENSHOTS, chromium, wait_until
from tests.servers import LiveServer

pytestmark = pytest.mark.claude

DESKTOP = {"width": 1400, "height": 1000}
WAIT_MS = 120_000
"""The longest any one step may take: the first JupyterLab page load on a slow 2-core machine
takes several seconds, and a kernel and Claude Code have to start."""

PAYLOAD = "<img src=x onerror=window.__catty_pwned=1>"
"""Agent text that runs script wherever it becomes markup instead of text."""
NEW_CELL = f"%catty new --env demo --empty !say {PAYLOAD} hello from the demo"
# A line magic's prompt is one line, so it can hold one directive only: no `!slow` before the
# `!say`. Claude Code's start alone keeps the reply seconds behind the cell's end.

REVIEW_CELLS = [
    "%load_ext catty_jupyter",
    "view = %catty new --agent shell --empty printf 'alpha\\nbeta\\n' > notes.txt\n"
    "import time\nlabel = view.label\n"
    "while not any(e['kind'] == 'result' for e in view.client.transcript(label)):\n"
    "    time.sleep(0.2)",
    "%catty diff {label}",
    "%catty list",
    "%catty env team-env",
]
"""A shell session that writes a file, then its diff, the session list and a new environment."""

WIDGET = ".catty-transcript"
REPLY = f"{WIDGET} .catty-assistant"

KERNEL_IDLE = """() => {
  const bar = document.querySelector('#jp-main-statusbar');
  return !!bar && bar.innerText.includes('Python 3 (ipykernel) | Idle');
}"""
"""Whether the notebook's kernel runs and is idle. (The toolbar's execution indicator says idle
before there is a kernel at all; cells run then are dropped without a word.)"""

CELL_STATE = """() => {
  const cells = document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell');
  const prompt = cells[1] && cells[1].querySelector('.jp-InputPrompt');
  const count = prompt ? prompt.textContent.trim() : '';
  if (!/^\\[\\d+\\]:$/.test(count)) return null;
  const reply = document.querySelector('.catty-transcript .catty-assistant');
  return {count, reply: reply ? reply.textContent : null};
}"""
"""Once the second cell shows its execution count (it finished): the count, and the agent's
reply if the widget already showed one at that moment. One evaluation, so nothing in between."""


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LiveServer]:
    """JupyterLab with the extension, serving a directory that holds `catty.ipynb`."""
    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python",
    }})  # fmt: skip
    nb.cells = [nbformat.v4.new_code_cell("%load_ext catty_jupyter"),
                nbformat.v4.new_code_cell(NEW_CELL)]  # fmt: skip
    nbformat.write(nb, root / "catty.ipynb")
    nb.cells = [nbformat.v4.new_code_cell(src) for src in REVIEW_CELLS]
    nbformat.write(nb, root / "review.ipynb")
    server = LiveServer(data_dir=tmp_path / "data", root_dir=root, app="jupyterlab")
    # No "get Jupyter news?" toast over the notebook (and no request to the internet for it).
    settings = server.lab_dir / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    server.start(timeout=120)
    try:
        yield server
    finally:
        server.stop()


class NotebookPage(LabPage):
    """One desktop-sized JupyterLab page showing a notebook, with the errors its scripts threw."""

    @classmethod
    async def open(  # type: ignore[override]
        cls, browser: Any, server: LiveServer, notebook: str = "catty.ipynb"
    ) -> NotebookPage:
        """A new page showing NOTEBOOK, once its kernel is ready."""
        tab = await cls.blank(browser, server, viewport=DESKTOP)
        await tab.page.goto(f"{server.url}lab/tree/{notebook}?token={server.token}",
                            timeout=WAIT_MS)  # fmt: skip
        await tab.wait_for_notebook()
        return tab

    async def wait_for_notebook(self) -> None:
        """Until the notebook shows its cells and its kernel is idle."""
        await self.page.locator(".jp-NotebookPanel .jp-Cell").nth(1).wait_for(timeout=WAIT_MS)
        await self.page.wait_for_function(KERNEL_IDLE, timeout=WAIT_MS)

    async def run_both_cells(self) -> dict[str, Any]:
        """Run the two cells as a user does; return what CELL_STATE saw when the second ended."""
        await self.page.locator(".jp-NotebookPanel .jp-Cell .jp-InputArea-editor").first.click()
        await self.page.keyboard.press("Shift+Enter")
        await self.page.keyboard.press("Shift+Enter")
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        try:
            handle = await self.page.wait_for_function(CELL_STATE, polling="raf", timeout=WAIT_MS)
        except PlaywrightTimeout:
            report = await self.report()
            raise AssertionError(f"the second cell did not finish\n{report}") from None
        return dict(await handle.json_value())

    async def texts(self, selector: str) -> list[str]:
        """The visible text of every element matching SELECTOR."""
        return list(await self.page.locator(selector).all_inner_texts())

    async def wait_shown(self, locator: Any, what: str) -> None:
        """Until LOCATOR is visible; on a timeout, say what the widget and the sessions held."""
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        try:
            await locator.wait_for(timeout=WAIT_MS)
        except PlaywrightTimeout:
            report = await self.report()
            raise AssertionError(f"no {what} in {WAIT_MS / 1000:.0f} s\n{report}") from None

    async def report(self) -> str:
        """What the cells and the widget show, what the API holds, the end of the server's log;
        and a screenshot."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(SCREENSHOTS / "jupyterlab-failure.png"))
        cells = "\n".join(await self.texts(".jp-NotebookPanel .jp-Cell"))
        widget = "\n".join(await self.texts(WIDGET))
        events = "\n".join(_session_events(self.server))
        return (f"cells:\n{cells}\nwidget:\n{widget}\nsessions:\n{events}\npage errors: {self.errors}\n"
                f"server log:\n{self.server.log_tail()}")  # fmt: skip


async def test_the_widget_fills_in_live_after_the_cell_and_shows_agent_html_as_text(
    lab: LiveServer,
) -> None:
    async with chromium() as browser:
        started = time.monotonic()
        tab = await NotebookPage.open(browser, lab)
        page = tab.page
        loaded = time.monotonic()
        cell = await tab.run_both_cells()
        finished = time.monotonic()
        assert cell["reply"] is None, f"the reply was there before the cell finished: {cell}"

        # The widget keeps following the session from the kernel after the cell has finished.
        reply = page.locator(REPLY, has_text="hello from the demo")
        await tab.wait_shown(reply, "agent reply in the widget")
        replied = time.monotonic()
        print(f"lab ready {loaded - started:.1f} s; cells ran {finished - loaded:.1f} s; "
              f"reply {replied - finished:.1f} s after the cell")  # fmt: skip
        assert (await reply.inner_text()).startswith("(demo model)")
        assert await page.locator(WIDGET).count() == 1

        # The agent's markup (and the user's, in the prompt) is text: no element, no script.
        assert PAYLOAD in await reply.inner_text()
        assert any(PAYLOAD in t for t in await tab.texts(f"{WIDGET} .catty-user"))
        assert await page.locator(f"{WIDGET} img").count() == 0
        assert await page.evaluate("typeof window.__catty_pwned") == "undefined"

        # The title says which session, what it does now and who steers; the send box is there.
        label = (await tab.texts(f"{WIDGET} b"))[0]
        await page.locator(f"{WIDGET} .catty-badge-idle").wait_for(timeout=WAIT_MS)
        assert "you have control" in "\n".join(await tab.texts(f"{WIDGET} .catty-meta"))
        assert label in "\n".join(await tab.texts(".jp-NotebookPanel .jp-OutputArea-output"))
        assert await page.locator(f"{WIDGET} textarea").is_enabled()
        assert await page.locator(f"{WIDGET} button", has_text="Send").is_enabled()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / "jupyterlab-transcript-widget.png"
        await page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
        assert tab.errors == []

        # Control: the same text as markup does run, so the checks above could fail.
        await page.evaluate("t => { document.createElement('div').innerHTML = t; }", PAYLOAD)
        await page.wait_for_function("window.__catty_pwned === 1", timeout=10_000)


async def test_a_reload_restores_the_widget_from_the_kernel_and_its_send_box_talks_to_the_agent(
    lab: LiveServer,
) -> None:
    notebook = lab.root_dir / "catty.ipynb"
    async with chromium() as browser:
        tab = await NotebookPage.open(browser, lab)
        page = tab.page
        await tab.run_both_cells()
        turn_done = page.locator(f"{WIDGET} .catty-event", has_text="✓ turn done")
        await tab.wait_shown(turn_done, "end of the first turn in the widget")
        label = (await tab.texts(f"{WIDGET} b"))[0]
        before = await tab.texts(f"{WIDGET} .catty-event")

        # Saved, the notebook keeps a reference to the widget; its state lives in the kernel.
        await page.keyboard.press("Escape")
        await page.keyboard.press("Control+s")

        async def saved() -> bool:
            return _saved_widget_output(notebook)

        await wait_until(saved, "the notebook to be saved with the widget", 60)

        await page.reload(timeout=WAIT_MS)
        await tab.wait_for_notebook()
        restored = page.locator(REPLY, has_text="hello from the demo")
        await tab.wait_shown(restored, "agent reply in the widget after the reload")
        assert await page.locator(WIDGET).count() == 1
        assert (await tab.texts(f"{WIDGET} b"))[0] == label
        after = await tab.texts(f"{WIDGET} .catty-event")
        assert after == before, "the restored widget shows the whole transcript"
        assert any("hello from the demo" in t for t in after), after

        # Its own send box reaches the agent, and the answer arrives live.
        box = page.locator(f"{WIDGET} textarea")
        await box.fill("!say second reply")
        await page.locator(f"{WIDGET} button", has_text="Send").click()
        second = page.locator(REPLY, has_text="second reply")
        await tab.wait_shown(second, "second reply in the widget")
        assert (await second.inner_text()).startswith("(demo model)")
        users = await tab.texts(f"{WIDGET} .catty-user")
        assert len(users) == 2 and "!say second reply" in users[1], users

        async def emptied() -> bool:
            return await box.input_value() == ""

        await wait_until(emptied, "the sent message to leave the box", 30)
        assert await tab.texts(f"{WIDGET} .catty-error") == []
        assert tab.errors == []


def _saved_widget_output(notebook: Path) -> bool:
    """Whether NOTEBOOK on disk shows the transcript widget as the second cell's result."""
    try:
        nb = nbformat.read(notebook, as_version=4)
    except (OSError, ValueError):
        return False
    outputs = nb.cells[1].get("outputs", [])
    return any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)


def _session_events(server: LiveServer) -> list[str]:
    """Every session's events as the API has them, one short line each."""
    lines = []
    for session in server.request("GET", "sessions")["sessions"]:
        label = session["label"]
        lines.append(f"{label}: {session.get('state')} {session.get('activity')}")
        for e in server.request("GET", f"sessions/{label}/transcript")["events"]:
            lines.append(f"  {e['seq']} {e['kind']} {json.dumps(e.get('payload'))[:160]}")
    return lines


async def test_diff_comments_session_list_and_environment_editor_in_lab(lab: LiveServer) -> None:
    """The other widgets as a user meets them: a comment from a diff line queues for the agent,
    the session list shows the session, the editor shows a refused `.env` line by its field."""
    async with chromium() as browser:
        tab = await NotebookPage.open(browser, lab, "review.ipynb")
        page = tab.page
        await page.locator(".jp-NotebookPanel .jp-Cell .jp-InputArea-editor").first.click()
        for _ in REVIEW_CELLS:
            await page.keyboard.press("Shift+Enter")
        diff = page.locator(".catty-diff").first
        await tab.wait_shown(diff.get_by_text("+2", exact=False).first, "the diff widget")
        assert "1 file changed" in await diff.inner_text()

        # Open the file, pick the line `+beta`: a comment box for line 2 of notes.txt opens.
        await diff.get_by_text("notes.txt", exact=False).first.click()
        await diff.locator("select").select_option(label="+beta")
        form = diff.get_by_text("line 2", exact=False)
        await tab.wait_shown(form, "the comment box")
        await diff.get_by_placeholder("Your comment").fill("rename to <b>gamma</b>")
        await diff.get_by_role("button", name="Add comment").click()
        queued = diff.get_by_text("rename to <b>gamma</b>", exact=False)
        await tab.wait_shown(queued, "the queued comment")
        assert await diff.locator("b", has_text="gamma").count() == 0  # text, not markup
        label = lab.request("GET", "sessions")["sessions"][0]["label"]
        comments = lab.request("GET", f"sessions/{label}/comments")
        assert [(c["path"], c["line"]) for c in comments["comments"]] == [("notes.txt", 2)]
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await diff.screenshot(path=str(SCREENSHOTS / "jupyterlab-diff-widget.png"))

        sessions = page.locator(".catty-session-list").first
        await tab.wait_shown(sessions.get_by_text(label).first, "the session in the list")
        assert await sessions.get_by_role("button", name="Stop").first.is_enabled()
        await sessions.screenshot(path=str(SCREENSHOTS / "jupyterlab-session-list.png"))

        editor = page.locator(".catty-env-editor").first
        await tab.wait_shown(editor.get_by_text("does not exist yet", exact=False), "the editor")
        await editor.get_by_placeholder("KEY=value, one per line").fill("GOOD=1\nbad line here")
        await editor.get_by_role("button", name="Save").click()
        refusal = editor.locator(".catty-field-error", has_text="line 2")
        await tab.wait_shown(refusal, "the .env refusal beside its field")
        await editor.screenshot(path=str(SCREENSHOTS / "jupyterlab-environment-editor.png"))
        assert tab.errors == []
