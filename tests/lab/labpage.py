"""Real JupyterLab under a non-root base_url, and one page of it in Chromium, for the panel's
browser tests and benchmark."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

from tests.servers import LiveServer

BASE_URL = "/user/alice@example.org/"
"""A JupyterHub-like prefix, with a character that must be escaped in URLs."""
DESKTOP = {"width": 1400, "height": 900}
WAIT_MS = 120_000
"""The longest one step may take: a first JupyterLab load on a busy 2-core machine takes
seconds, and Claude Code has to start."""
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


def lab_server(tmp_path: Path, theme: str | None = None, **config: Any) -> Iterator[LiveServer]:
    """JupyterLab with the extension under BASE_URL, serving an empty folder (in THEME, e.g.
    "JupyterLab Dark"); stopped after."""
    root = tmp_path / "root"
    root.mkdir()
    server = LiveServer(data_dir=tmp_path / "data", root_dir=root, app="jupyterlab",
                        base_url=BASE_URL, config=config)  # fmt: skip
    # No "get Jupyter news?" toast over the page (and no request to the internet for it).
    settings = server.lab_dir / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    if theme is not None:
        (settings / "themes.jupyterlab-settings").write_text(json.dumps({"theme": theme}))
    server.start(timeout=120)
    try:
        yield server
    finally:
        server.stop()


async def screenshot(page: Any, name: str) -> Path:
    """Save a screenshot of PAGE as build/screenshots/NAME."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    await page.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


class LabPage:
    """One desktop-sized JupyterLab page in its own browser context (its own tab id)."""

    def __init__(self, page: Any, server: LiveServer) -> None:
        self.page = page
        self.server = server
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    @classmethod
    async def blank(cls, browser: Any, server: LiveServer, **context_options: Any) -> Self:
        """A new browser context (its own storage: its own tab id) with one empty page."""
        context = await browser.new_context(**{"viewport": DESKTOP, **context_options})
        context.set_default_timeout(60_000)
        return cls(await context.new_page(), server)

    @classmethod
    async def open(cls, browser: Any, server: LiveServer, color_scheme: str = "light") -> Self:
        """A new context and page showing JupyterLab, once the sessions panel is there."""
        tab = await cls.blank(browser, server, color_scheme=color_scheme)
        await tab.page.goto(f"{server.url}lab?token={server.token}", timeout=WAIT_MS)
        await tab.page.locator(".lm-TabBar-tab[data-id='catty-sessions']").wait_for(timeout=WAIT_MS)
        return tab

    async def show_panel(self) -> None:
        """Open the sessions panel in the side bar."""
        panel = self.page.locator("#catty-sessions")
        if not await panel.is_visible():
            await self.page.locator(".lm-TabBar-tab[data-id='catty-sessions']").click()
        await panel.wait_for()

    async def open_session(self, label: str) -> None:
        """Open LABEL's tab from the side panel."""
        await self.show_panel()
        await self.page.locator(f".catty-Row[data-label='{label}']").click()
        await self.page.locator(f"#catty-session-{label} .catty-SessionView").wait_for()

    async def wait_shown(self, locator: Any, what: str) -> None:
        """Until LOCATOR is visible; on a timeout, say what the page and the server showed."""
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        try:
            await locator.first.wait_for(timeout=WAIT_MS)
        except PlaywrightTimeout:
            shot = await screenshot(self.page, "lab-failure.png")
            views = await self.page.locator(".catty-SessionView, .catty-DiffView").all_inner_texts()
            raise AssertionError(
                f"no {what} in {WAIT_MS / 1000:.0f} s (screenshot {shot})\npage: {views}\n"
                f"page errors: {self.errors}\nserver log:\n{self.server.log_tail()}"
            ) from None
