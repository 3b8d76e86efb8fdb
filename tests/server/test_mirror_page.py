"""The mobile mirror page `{base_url}catty/s/{label}` in real headless Chromium, at phone size.

The Jupyter server under pytest-jupyter runs on the test's own event loop, so the browser is
driven through playwright's async API: a synchronous one would block the server it talks to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from tests.conftest import results

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
TIMEOUT_MS = 30_000

IMG = "<img src=x onerror="
AGENT_PROMPT = (
    "echo '<img src=x onerror=\"window.__pwned=1\">' ; echo '<script>window.__pwned=2</script>'"
)
USER_MESSAGE = (
    "echo 'typed <img src=x onerror=\"window.__pwned=3\">' '<script>window.__pwned=4</script>'"
)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """Debian's Chromium under playwright; a missing browser fails the test, it is not skipped."""
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: run `make test`, which installs it")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: run `make test`, which installs it")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


class Phone:
    """One phone-sized browser page, with what its console said."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.console: list[str] = []
        self.errors: list[str] = []
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    @classmethod
    async def open(cls, browser: Any) -> Phone:
        """A new page in its own context (own cookies), sized like a 390x844 phone."""
        context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
        context.set_default_timeout(TIMEOUT_MS)
        return cls(await context.new_page())

    def csp_complaints(self) -> list[str]:
        """Console lines where the browser refused something because of the page's CSP."""
        return [m for m in self.console if "Content Security Policy" in m or "Refused to" in m]

    async def text(self, selector: str) -> str:
        """The visible text of every element matching SELECTOR, one per line."""
        return "\n".join(await self.page.locator(selector).all_inner_texts())

    async def seqs(self) -> list[int]:
        """The seq of every event shown, in page order."""
        values = await self.page.eval_on_selector_all(
            "#transcript [data-seq]", "nodes => nodes.map(n => Number(n.dataset.seq))"
        )
        return [int(v) for v in values]

    async def client_id(self) -> str:
        """The id this page acts under, as it shows it."""
        return str(await self.page.locator("#client").inner_text())


@pytest.fixture
def mirror_url(jp_base_url: str, jp_http_port: int, jp_serverapp: Any) -> Callable[..., str]:
    """The mirror page of a label, logging the browser in with the server's token by default."""

    def url(label: str, login: bool = True) -> str:
        address = f"http://127.0.0.1:{jp_http_port}{jp_base_url}catty/s/{label}"
        return f"{address}?token={jp_serverapp.identity_provider.token}" if login else address

    return url


async def wait_until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 30) -> Any:
    """Poll CHECK until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while not (value := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)
    return value


def save_screenshot(source: Path) -> Path:
    """Keep a copy of the screenshot where people look for it; print both paths."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    kept = SCREENSHOTS / source.name
    shutil.copyfile(source, kept)
    print(f"mirror screenshot: {source} (copied to {kept})")
    return kept


async def test_content_is_text_the_csp_holds_and_the_page_fits_a_phone(
    api: Any, session_until: Any, mirror_url: Any, tmp_path: Path
) -> None:
    code, s = await api("POST", "sessions", {"agent": "shell", "prompt": AGENT_PROMPT})
    assert code == 201, s
    label = s["label"]
    await session_until(label, lambda e: results(e) >= 1, what="the prompt's command")

    async with chromium() as browser:
        phone = await Phone.open(browser)
        page = phone.page
        response = await page.goto(mirror_url(label))
        assert response is not None and response.status == 200
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, csp
        assert "connect-src 'self' ws://127.0.0.1:" in csp, csp
        # The login token does not stay in the address bar.
        assert "token=" not in page.url

        await page.wait_for_selector(f"#transcript .output:has-text('{IMG}')")
        assert await page.locator("#label").inner_text() == label
        await page.wait_for_selector("#state[data-state='idle']")
        client = await phone.client_id()
        assert re.fullmatch(r"phone-[0-9a-f]{4}", client), client

        # The API client that created the session holds focus; the page takes it to type.
        await page.click("#take")
        await page.wait_for_selector("#focus[data-who='me']")
        await page.fill("#text", USER_MESSAGE)
        await page.click("#send")
        await page.wait_for_selector("#transcript .msg.user:has-text('typed <img')")
        await page.wait_for_selector("#transcript .output:has-text('typed <img')")
        assert await page.input_value("#text") == "", "a sent message leaves the box"

        # Nothing from the agent or the user ran or became markup.
        assert await page.evaluate("typeof window.__pwned") == "undefined"
        assert await page.locator("#transcript img").count() == 0
        assert await page.locator("#transcript script").count() == 0
        assert await page.locator("script").count() == 1  # mirror.js itself
        user_text = await phone.text("#transcript .msg.user")
        assert IMG in user_text and "<script>window.__pwned=4</script>" in user_text
        output_text = await phone.text("#transcript .output")
        assert IMG in output_text and "<script>window.__pwned=2</script>" in output_text
        mine = page.locator("#transcript .msg.user", has_text="typed <img").locator(".who")
        assert (await mine.inner_text()).startswith("you")
        # Our own script ran under the CSP (it drew all of the above) and nothing was refused.
        assert phone.csp_complaints() == [], phone.console
        assert phone.errors == []

        # Phone-sized: no sideways scrolling, the send box in view, thumb-sized buttons.
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        box = await page.locator("#composer").bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"]
        send = await page.locator("#send").bounding_box()
        assert send is not None and send["height"] >= 44

        # The id is kept per browser: a reload acts as the same client.
        await page.reload()
        await page.wait_for_selector(f"#transcript .output:has-text('{IMG}')")
        assert await phone.client_id() == client
        await page.wait_for_selector("#focus[data-who='me']")

        shot = tmp_path / "mirror.png"
        await page.screenshot(path=str(shot))
        save_screenshot(shot)
    await api("POST", f"sessions/{label}/stop")


async def test_older_events_load_on_scroll_up_and_a_dropped_stream_loses_nothing(
    api: Any, session_until: Any, mirror_url: Any, events: Any
) -> None:
    code, s = await api("POST", "sessions", {"agent": "shell", "prompt": "echo first-marker"})
    assert code == 201, s
    label = s["label"]
    for i in range(12):  # about six events a turn: well over one page of fifty
        code, body = await api("POST", f"sessions/{label}/messages", {"text": f"echo line-{i}"})
        assert code == 202, body
    await session_until(label, lambda e: results(e) >= 13, what="thirteen turns")

    async with chromium() as browser:
        phone = await Phone.open(browser)
        page = phone.page
        sockets: list[dict[str, Any]] = []

        async def relay(ws: Any) -> None:
            # Pass the stream through, noting each seq, unless the test cut the line.
            state: dict[str, Any] = {"url": ws.url, "ws": ws, "cut": False, "seqs": []}
            server = ws.connect_to_server()

            def forward(message: str | bytes) -> None:
                if not state["cut"]:
                    state["seqs"].append(json.loads(message)["seq"])
                    ws.send(message)

            server.on_message(forward)
            sockets.append(state)

        await page.route_web_socket(re.compile(r".*/stream\?.*"), relay)
        await page.goto(mirror_url(label))
        await page.wait_for_selector("#transcript .output:has-text('line-11')")
        first_screen = await phone.seqs()
        assert "first-marker" not in await phone.text("#transcript")
        assert min(first_screen) > 1

        # Scroll up until the beginning: each page lands above, the reader's place is kept.
        async def at_start() -> bool:
            await page.eval_on_selector("#transcript", "t => { t.scrollTop = 0; }")
            return await page.locator("#older[data-start='1']").count() == 1

        await wait_until(at_start, "the beginning of the transcript")
        await page.wait_for_selector("#transcript .output:has-text('first-marker')")
        shown = await phone.seqs()
        assert shown == sorted(set(shown)), "events shown once each, in order"
        assert min(shown) < min(first_screen)
        assert phone.csp_complaints() == [] and phone.errors == []

        # Live: a message from another client shows up without a reload.
        code, body = await api("POST", f"sessions/{label}/messages", {"text": "echo live-one"})
        assert code == 202, body
        await page.wait_for_selector("#transcript .output:has-text('live-one')")

        # Drop the stream while a turn runs, then let the page reconnect on its own.
        assert len(sockets) == 1
        before = sockets[0]
        last_seen = max(before["seqs"])
        assert parse_qs(urlparse(before["url"]).query)["client"] == [await phone.client_id()]
        before["cut"] = True
        code, body = await api("POST", f"sessions/{label}/messages", {"text": "echo after-drop"})
        assert code == 202, body
        await session_until(label, lambda e: results(e) >= 15, what="the turn during the drop")
        await before["ws"].close(code=1011, reason="test drops the line")
        await page.wait_for_selector("#conn[data-conn='down']")
        await page.wait_for_selector("#transcript .output:has-text('after-drop')", timeout=20_000)
        await page.wait_for_selector("#conn[data-conn='live']")

        assert len(sockets) == 2
        assert parse_qs(urlparse(sockets[1]["url"]).query)["after"] == [str(last_seen)]
        shown = await phone.seqs()
        assert shown == sorted(set(shown)), "no event shown twice after the reconnect"
        every = {e["seq"]: e for e in await events(label)}
        for kind in ("user", "tool_use", "result"):
            expected = [seq for seq, e in every.items() if e["kind"] == kind]
            assert [seq for seq in shown if every[seq]["kind"] == kind] == expected, kind
    await api("POST", f"sessions/{label}/stop")


async def test_logged_out_browsers_go_to_login_and_unknown_labels_say_so(
    api: Any, mirror_url: Any, jp_base_url: str, jp_http_port: int
) -> None:
    code, s = await api("POST", "sessions", {"agent": "shell"})
    assert code == 201, s
    async with chromium() as browser:
        stranger = await Phone.open(browser)
        await stranger.page.goto(mirror_url(s["label"], login=False))
        assert urlparse(stranger.page.url).path == f"{jp_base_url}login"
        asset = f"http://127.0.0.1:{jp_http_port}{jp_base_url}catty/static/mirror.js"
        resp = await stranger.page.request.get(asset, max_redirects=0)
        assert resp.status == 302 and "/login" in resp.headers["location"]

        phone = await Phone.open(browser)
        response = await phone.page.goto(mirror_url("no-such-session-0000"))
        assert response is not None and response.status == 404
        assert "There is no session called “no-such-session-0000”" in await phone.text("body")
        assert await phone.page.locator("script").count() == 0
        # The page's own assets are served only by name: nothing else under static/.
        resp = await phone.page.request.get(asset.replace("mirror.js", "mirror.html"))
        assert resp.status == 404
    await api("POST", f"sessions/{s['label']}/stop")


async def test_take_control_shows_who_holds_focus_live(
    api: Any, session_until: Any, mirror_url: Any, tmp_path: Path
) -> None:
    code, s = await api("POST", "sessions", {"agent": "shell", "prompt": "echo ready"})
    assert code == 201, s
    label = s["label"]
    await session_until(label, lambda e: results(e) >= 1, what="the first turn")
    code, focus = await api("GET", f"sessions/{label}/focus")
    assert code == 200, focus
    creator = focus["holder"]
    assert creator

    async with chromium() as browser:
        phone = await Phone.open(browser)
        page = phone.page
        await page.goto(mirror_url(label))
        await page.wait_for_selector("#focus[data-who='other']")
        assert creator in await page.locator("#focus-text").inner_text()
        assert await page.locator("#take").is_visible()

        await page.click("#take")
        await page.wait_for_selector("#focus[data-who='me']")
        assert "You have control (this page)" in await page.locator("#focus-text").inner_text()
        assert not await page.locator("#take").is_visible()
        code, focus = await api("GET", f"sessions/{label}/focus")
        assert focus["holder"] == await phone.client_id()

        # Someone else takes over: the page learns it from the stream, and may not send.
        code, focus = await api("POST", f"sessions/{label}/focus", {"client": "laptop-1"})
        assert code == 200 and focus["holder"] == "laptop-1", focus
        await page.wait_for_selector("#focus[data-who='other']")
        assert "laptop-1 has control" in await page.locator("#focus-text").inner_text()
        await page.fill("#text", "echo not-mine")
        await page.click("#send")
        await page.wait_for_selector("#notice:has-text('laptop-1')")
        assert await page.input_value("#text") == "echo not-mine", "a refused message stays"
        assert phone.errors == []
        shot = tmp_path / "mirror-watching.png"
        await page.screenshot(path=str(shot))
        save_screenshot(shot)

        # Stopped: no control to take; the button resumes it, and the page can send again.
        code, _ = await api("POST", f"sessions/{label}/stop", {"client": "laptop-1"})
        assert code == 200
        await page.wait_for_selector("#focus[data-who='ended']")
        assert "This session is stopped" in await page.locator("#focus-text").inner_text()
        assert await page.locator("#take").inner_text() == "Resume"
        assert await page.locator("#text").is_disabled()
        assert not await page.locator("#notice").is_visible()  # "laptop-1 holds focus" is moot
        shot = tmp_path / "mirror-stopped.png"
        await page.screenshot(path=str(shot))
        save_screenshot(shot)
        await page.click("#take")
        await page.wait_for_selector("#focus:not([data-who='ended'])")
        code, info = await api("GET", f"sessions/{label}")
        assert info["state"] in ("starting", "running"), info
        await page.wait_for_selector("#state[data-state='idle']")
        assert await page.locator("#text").is_enabled()
        assert phone.errors == []
    await api("POST", f"sessions/{label}/stop")


@pytest.mark.claude
async def test_approve_and_deny_answer_the_agents_permission_requests(
    api: Any, session_until: Any, mirror_url: Any, tmp_path: Path
) -> None:
    code, s = await api("POST", "sessions", {
        "environment": "demo", "options": {"permission_mode": "default"},
        "prompt": "!bash python3 -c \"print('approved-' + str(6 * 7))\"\n!bash touch denied-file",
    })  # fmt: skip
    assert code == 201, s
    label = s["label"]
    async with chromium() as browser:
        phone = await Phone.open(browser)
        page = phone.page
        await page.goto(mirror_url(label))
        await page.click("#take")
        await page.wait_for_selector("#focus[data-who='me']")

        ask = page.locator("#pending .ask")
        await ask.filter(has_text="approved-").wait_for(timeout=90_000)
        await page.wait_for_selector("#state[data-state='waiting']")
        shot = tmp_path / "mirror-permission.png"
        await page.screenshot(path=str(shot))
        save_screenshot(shot)
        await ask.get_by_role("button", name="Approve").click()
        await page.wait_for_selector("#transcript .output:has-text('approved-42')", timeout=60_000)
        await page.wait_for_selector("#transcript .decision.allow")

        await ask.filter(has_text="denied-file").wait_for(timeout=60_000)
        await ask.get_by_role("button", name="Deny").click()
        await page.wait_for_selector("#transcript .decision.deny")
        await page.wait_for_selector("#pending", state="hidden")
        assert await page.locator("#transcript .permission .answer").all_inner_texts() == [
            "allowed", "denied",
        ]  # fmt: skip
        assert phone.errors == []
    evs = await session_until(label, lambda e: results(e) >= 1, what="the turn to end")
    decisions = [e for e in evs if e["kind"] == "permission_decision"]
    assert [d["payload"]["behavior"] for d in decisions] == ["allow", "deny"]
    await api("POST", f"sessions/{label}/stop")
