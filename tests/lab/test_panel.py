"""The JupyterLab side panel in real JupyterLab, in headless Chromium, under a non-root base_url
(as on JupyterHub), against a real server with the demo model and the real Claude Code CLI.

Each test saves a screenshot to build/screenshots/.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.labpage import BASE_URL, LabPage, lab_server, screenshot
from tests.server.test_mirror_page import chromium
from tests.servers import LiveServer

PAYLOAD = "<img src=x onerror=window.__catty_pwned=1>"
"""Agent text that runs script wherever it becomes markup instead of text."""


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LiveServer]:
    """JupyterLab with the extension under BASE_URL, serving an empty folder."""
    yield from lab_server(tmp_path)


def events(server: LiveServer, label: str) -> list[dict[str, Any]]:
    """The session's whole transcript, from the API."""
    return list(server.request("GET", f"sessions/{label}/transcript?limit=1000")["events"])


def wait_for_events(server: LiveServer, label: str, check: Any, what: str,
                    timeout: float = 120) -> list[dict[str, Any]]:  # fmt: skip
    """Poll the transcript until CHECK(events) holds."""
    deadline = time.monotonic() + timeout
    while True:
        evs = events(server, label)
        if check(evs):
            return evs
        if time.monotonic() > deadline:
            kinds = [(e["kind"], str(e["payload"])[:100]) for e in evs]
            raise AssertionError(f"timed out waiting for {what}; transcript: {kinds}")
        time.sleep(0.3)


@pytest.mark.claude
async def test_new_session_from_the_dialog_fills_in_live_and_shows_agent_html_as_text(
    lab: LiveServer,
) -> None:
    async with chromium() as browser:
        tab = await LabPage.open(browser, lab)
        page = tab.page
        assert BASE_URL in page.url
        await tab.show_panel()
        await page.get_by_role("button", name="+ New session").click()
        dialog = page.locator(".jp-Dialog")
        await dialog.get_by_label("Prompt").fill(f"!say {PAYLOAD} hello from the panel")
        await dialog.get_by_label("Environment").select_option("demo")
        await dialog.get_by_label("Start with an empty workspace instead").check()
        await screenshot(page, "lab-new-session-dialog.png")
        await dialog.get_by_role("button", name="Start session").click()

        view = page.locator(".catty-SessionView")
        await view.wait_for()
        reply = view.locator(".catty-Assistant", has_text="hello from the panel")
        await tab.wait_shown(reply, "the agent's reply in the session tab")
        text = await reply.inner_text()
        assert PAYLOAD in text, text  # shown as the text it is
        assert await view.locator(".catty-Assistant img").count() == 0
        assert await page.evaluate("window.__catty_pwned") is None
        # The session is in the side panel, with its state; the creator holds focus.
        label = (await view.locator(".catty-SessionView-title").inner_text()).strip()
        row = page.locator(f".catty-Row[data-label='{label}']")
        await row.wait_for()
        assert "demo" in await row.inner_text()
        await page.locator(".catty-SessionView[data-focus='me']").wait_for()
        await screenshot(page, "lab-session-view.png")
        assert tab.errors == []
    lab.request("POST", f"sessions/{label}/stop")


async def test_take_control_in_a_second_browser_and_the_first_loses_it(lab: LiveServer) -> None:
    s = lab.request("POST", "sessions", {"agent": "shell", "prompt": "echo started",
                                         "client": "lab-someone-else"})  # fmt: skip
    label = s["label"]
    wait_for_events(lab, label, lambda e: any(x["kind"] == "result" for x in e), "the first turn")
    async with chromium() as browser:
        first = await LabPage.open(browser, lab)
        second = await LabPage.open(browser, lab)
        for tab in (first, second):
            await tab.open_session(label)
        one, two = (
            first.page.locator(".catty-SessionView"),
            second.page.locator(".catty-SessionView"),
        )
        # Neither tab holds it yet: the session's creator, lab-someone-else, does.
        await first.page.locator(".catty-SessionView[data-focus='other']").wait_for()
        assert await one.get_by_label("Message to the agent").is_disabled()
        await first.page.get_by_role("button", name="Take control").click()
        await first.page.locator(".catty-SessionView[data-focus='me']").wait_for()
        assert await one.get_by_label("Message to the agent").is_enabled()

        await second.page.get_by_role("button", name="Take control").click()
        await second.page.locator(".catty-SessionView[data-focus='me']").wait_for()
        # The first is told at once (through the transcript) and can no longer send.
        await first.page.locator(".catty-SessionView[data-focus='other']").wait_for(timeout=15_000)
        assert await one.get_by_label("Message to the agent").is_disabled()
        focus_text = await one.locator(".catty-Focus-text").inner_text()
        holder = lab.request("GET", f"sessions/{label}")["focus"]["holder"]
        assert holder in focus_text and "watching" in focus_text
        await one.locator(".catty-Note", has_text="took control").first.wait_for()

        # The second sends; the first sees the message arrive.
        await two.get_by_label("Message to the agent").fill("echo from-the-second-browser")
        await two.get_by_label("Message to the agent").press("Enter")
        tool = one.locator(".catty-Tool", has_text="from-the-second-browser").first
        await tool.wait_for(timeout=30_000)
        await tool.locator(".catty-Tool-state", has_text="done").wait_for(timeout=30_000)
        await tool.locator("summary").click()  # expanded, it shows what the command printed
        await tool.locator(".catty-Output", has_text="from-the-second-browser").wait_for()
        await screenshot(first.page, "lab-focus-lost.png")
        await screenshot(second.page, "lab-focus-taken.png")

        # Stopped, nobody holds control any more: both tabs say to resume, and cannot send.
        lab.request("POST", f"sessions/{label}/stop", {"client": "lab-someone-else"})
        for view in (one, two):
            await view.locator(".catty-Focus-text", has_text="stopped: Resume").wait_for()
            assert await view.get_by_label("Message to the agent").is_disabled()
            assert not await view.get_by_role("button", name="Take control").is_visible()
            assert await view.get_by_role("button", name="Resume").is_enabled()
        assert first.errors == [] and second.errors == []


@pytest.mark.claude
async def test_approve_a_permission_request_in_the_session_tab(lab: LiveServer) -> None:
    s = lab.request("POST", "sessions", {
        "environment": "demo", "options": {"permission_mode": "default"},
        "prompt": "!bash python3 -c \"print('approved-' + str(6 * 7))\"",
    })  # fmt: skip
    label = s["label"]
    async with chromium() as browser:
        tab = await LabPage.open(browser, lab)
        await tab.open_session(label)
        page = tab.page
        await page.get_by_role("button", name="Take control").click()
        ask = page.locator(".catty-Ask", has_text="approved-")
        await tab.wait_shown(ask, "the permission request")
        await page.locator(".catty-SessionView .catty-Status[data-status='waiting']").wait_for(
            timeout=30_000
        )
        # JupyterLab's own notification says so too (from the side panel's list).
        toast = page.locator(".Toastify__toast", has_text=f"{label} is waiting for a permission")
        await toast.first.wait_for(timeout=30_000)
        await screenshot(page, "lab-permission.png")
        await ask.get_by_role("button", name="Approve").click()
        await tab.wait_shown(
            page.locator(".catty-Tool", has_text="approved-42"), "the approved command's output"
        )
        await page.locator(".catty-Decision.catty-mod-allow").wait_for()
        await page.locator(".catty-Pending").wait_for(state="hidden")
        assert tab.errors == []
    decisions = [e for e in events(lab, label) if e["kind"] == "permission_decision"]
    assert [d["payload"]["behavior"] for d in decisions] == ["allow"]
    lab.request("POST", f"sessions/{label}/stop")


async def test_a_comment_on_a_diff_line_reaches_the_agent(lab: LiveServer) -> None:
    notebook = json.dumps({"cells": [{"cell_type": "code", "source": "answer = 6 * 7",
                                      "metadata": {}, "outputs": [], "execution_count": None}],
                           "metadata": {}, "nbformat": 4, "nbformat_minor": 5})  # fmt: skip
    prompt = f"printf 'alpha\\nbeta\\ngamma\\n' > notes.txt; printf '%s' '{notebook}' > demo.ipynb"
    other = lab.request("POST", "sessions", {"agent": "shell", "prompt": "echo another"})
    s = lab.request("POST", "sessions", {"agent": "shell", "prompt": prompt})
    label = s["label"]
    wait_for_events(lab, label, lambda e: any(x["kind"] == "result" for x in e), "the first turn")
    async with chromium() as browser:
        tab = await LabPage.open(browser, lab)
        page = tab.page
        # Keyboard only: filter the list down to the session, then open it with Enter.
        await tab.show_panel()
        rows = page.locator(".catty-Row")
        await rows.nth(1).wait_for()
        await page.get_by_label("Filter sessions").fill(label)
        await page.wait_for_function("document.querySelectorAll('.catty-Row').length === 1")
        assert await rows.first.get_attribute("data-label") == label
        await page.keyboard.press("Tab")
        await page.keyboard.press("Tab")
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.dataset.label") == label
        await page.keyboard.press("Enter")
        await page.locator(f"#catty-session-{label} .catty-SessionView").wait_for()
        # The session was started elsewhere (its creator holds focus): take it to send.
        await page.get_by_role("button", name="Take control").click()
        await page.locator(".catty-SessionView[data-focus='me']").wait_for()
        await page.locator(".catty-SessionView").get_by_role("button", name="Diff").click()
        diff = page.locator(".catty-DiffView")
        line = diff.locator(
            ".catty-DiffLine[data-path='notes.txt'][data-line='2'][data-side='new']"
        )
        await tab.wait_shown(line, "line 2 of notes.txt in the diff")
        assert (
            "+3" in await diff.locator(".catty-DiffFile", has_text="notes.txt").first.inner_text()
        )
        nb = diff.locator(".catty-DiffFile[data-path='demo.ipynb'] .catty-NotebookDiff")
        await nb.wait_for()
        assert "answer = 6 * 7" in await nb.inner_text()  # a notebook diff, not raw JSON
        await line.locator(".catty-DiffLine-comment").click()
        box = diff.locator(".catty-CommentBox")
        await box.get_by_label("Comment").fill("Beta deserves a capital B")
        await box.get_by_role("button", name="Add comment").click()
        await diff.locator(".catty-DiffComments", has_text="Beta deserves a capital B").wait_for()
        await screenshot(page, "lab-diff-comment.png")
        send = diff.locator(".catty-DiffSend")
        await send.get_by_label("Message to send with the comments").fill("echo reviewed")
        await send.get_by_role("button", name="Send comments").click()
        evs = wait_for_events(
            lab, label,
            lambda e: any(x["kind"] == "user" and "capital B" in x["payload"].get("text", "")
                          for x in e),
            "the comment in the agent's next message",
        )  # fmt: skip
        sent = [e for e in evs if e["kind"] == "user"][-1]["payload"]["text"]
        assert "notes.txt line 2" in sent and "beta" in sent, sent
        assert lab.request("GET", f"sessions/{label}/comments")["comments"] == []
        assert tab.errors == []
    for done in (label, other["label"]):
        lab.request("POST", f"sessions/{done}/stop")


def test_the_extension_is_installed_and_enabled(lab: LiveServer) -> None:
    """JupyterLab lists the prebuilt extension (what `make lab` shows)."""
    import urllib.request

    req = urllib.request.Request(f"{lab.url}lab/api/settings/catty-jupyter:plugin",
                                 headers={"Authorization": f"token {lab.token}"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as resp:
        data = json.loads(resp.read())
    assert data["id"] == "catty-jupyter:plugin"
    assert data["schema"]["properties"]["panelSide"]["default"] == "left"


@pytest.fixture
def dark_lab(tmp_path: Path) -> Iterator[LiveServer]:
    """JupyterLab as `lab`, with the dark theme chosen in the user's settings."""
    yield from lab_server(tmp_path, theme="JupyterLab Dark")


async def test_environment_editor_from_the_palette_shows_errors_beside_fields(
    dark_lab: LiveServer,
) -> None:
    lab = dark_lab
    async with chromium() as browser:
        tab = await LabPage.open(browser, lab, color_scheme="dark")
        page = tab.page
        await page.locator("body[data-jp-theme-light='false']").wait_for(state="attached")
        # The command palette offers the extension's commands.
        await page.keyboard.press("Control+Shift+c")
        await page.locator(".lm-CommandPalette-input").fill("New Agent Environment")
        await page.locator(
            ".lm-CommandPalette-item", has_text="New Agent Environment"
        ).first.click()
        editor = page.locator(".catty-EnvEditor")
        await editor.wait_for()
        await editor.get_by_label("Name").fill("web-dev")
        await editor.get_by_label("Network").select_option("custom")
        await editor.get_by_label("Allowed domains").fill("pypi.org\nfiles.pythonhosted.org")
        await editor.get_by_label("Variables").fill(
            "DEBUG=1\nAPI_TOKEN=s3cret-value\nthis is not a variable"
        )
        await editor.get_by_label("Secrets").fill("API_TOKEN")
        await editor.get_by_role("button", name="Save").click()
        error = editor.locator(".catty-FieldError[data-field='env']")
        await error.filter(has_text="line 3").wait_for()
        assert await editor.get_by_label("Variables").get_attribute("aria-invalid") == "true"
        await screenshot(page, "lab-environment-error-dark.png")

        await editor.get_by_label("Variables").fill("DEBUG=1\nAPI_TOKEN=s3cret-value")
        await editor.get_by_role("button", name="Save").click()
        await editor.locator(".catty-EnvEditor-status", has_text="Saved").wait_for()
        assert await error.inner_text() == ""
        # The secret comes back masked, never as its value.
        assert "s3cret-value" not in await page.content()
        assert tab.errors == []
    env = lab.request("GET", "environments/web-dev")
    assert env["network"] == "custom"
    assert env["allowed_domains"] == ["pypi.org", "files.pythonhosted.org"]
    assert env["secrets"] == ["API_TOKEN"] and "s3cret-value" not in json.dumps(env)


async def test_the_list_follows_the_server_at_once_without_polling(lab: LiveServer) -> None:
    # Poll once a minute: anything the list shows within seconds came from the server's hints.
    settings = lab.lab_dir / "user-settings" / "catty-jupyter"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "plugin.jupyterlab-settings").write_text(json.dumps({"pollInterval": 60000}))
    async with chromium() as browser:
        tab = await LabPage.open(browser, lab)
        page = tab.page
        await tab.show_panel()
        await page.wait_for_timeout(1000)  # the panel's first look is over
        made = lab.request("POST", "sessions", {"agent": "shell", "prompt": "echo listed"})
        row = page.locator(f".catty-Row[data-label='{made['label']}']")
        await row.wait_for(timeout=10_000)
        await row.locator(".catty-Status[data-status='idle']").wait_for(timeout=30_000)
        lab.request("POST", f"sessions/{made['label']}/stop")
        await row.locator(".catty-Status[data-status='stopped']").wait_for(timeout=5_000)
        lab.request("DELETE", f"sessions/{made['label']}?confirm={made['label']}")
        await row.wait_for(state="detached", timeout=5_000)
        await screenshot(page, "lab-list-follows.png")
        assert tab.errors == []
