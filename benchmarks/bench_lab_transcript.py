"""Opening a session with 50,000 transcript events in the JupyterLab panel, in real Chromium.

Prints a table and never fails the build on a number. Two sessions on one JupyterLab server
(under a non-root base_url): a short one (one turn) as the baseline, and a long one grown to
50,000 events. Each round opens the session's tab from the side panel and measures, in the
page, the time from the click to the newest event painted (its node in the DOM and the next
animation frame drawn); then the tab is closed. Then the long transcript is scrolled upward
for a few seconds (older pages load as it goes) and the frame times are recorded, beside the
frame times of the same page left idle.

Goal: the newest events painted within 300 ms of opening the long session.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_late_attach import grow_transcript
from tests.servers import LiveServer

EVENTS = 50_000
ROUNDS = int(os.environ.get("CATTY_BENCH_ROUNDS", "5"))
GOAL_MS = 300.0
BASE_URL = "/user/bench/"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip

OPEN_AND_PAINT = """async ([label, seq]) => {
  const row = document.querySelector(`.catty-Row[data-label="${label}"]`);
  const t0 = performance.now();
  row.click();
  await new Promise((resolve, reject) => {
    setTimeout(() => reject(new Error(`event ${seq} of ${label} not shown in 60 s`)), 60000);
    const done = () => requestAnimationFrame(() => resolve());
    const found = () => document.querySelector(`.catty-SessionView [data-seq="${seq}"]`);
    if (found()) { done(); return; }
    const obs = new MutationObserver(() => { if (found()) { obs.disconnect(); done(); } });
    obs.observe(document.body, {childList: true, subtree: true});
  });
  return performance.now() - t0;
}"""

FRAMES = """async ([label, ms, scroll]) => {
  const list = document.querySelector(`#catty-session-${label} .catty-Transcript`);
  const times = [];
  let last = performance.now();
  const end = last + ms;
  await new Promise(resolve => {
    const tick = now => {
      times.push(now - last);
      last = now;
      if (scroll) list.scrollTop = Math.max(0, list.scrollTop - 400);
      if (now < end) requestAnimationFrame(tick); else resolve();
    };
    requestAnimationFrame(tick);
  });
  return {times, events: list.querySelectorAll('.catty-Event').length};
}"""


def make_sessions(server: LiveServer) -> tuple[str, str]:
    """A short shell session and a long one; both stopped, the long one's transcript grown."""
    labels: list[str] = []
    for name in ("short", "long"):
        s = server.request("POST", "sessions", {"agent": "shell", "prompt": f"echo {name}"})
        deadline = time.monotonic() + 60
        while not any(e["kind"] == "result" for e in server.request(
                "GET", f"sessions/{s['label']}/transcript")["events"]):  # fmt: skip
            if time.monotonic() > deadline:
                raise RuntimeError(f"session {s['label']} did not finish its turn")
            time.sleep(0.2)
        server.request("POST", f"sessions/{s['label']}/stop")
        labels.append(s["label"])
    return labels[0], labels[1]


SHOWN = ("user", "assistant", "tool_use", "result", "system", "error")
"""Kinds of events that always get a node of their own in the transcript."""


def last_seq(server: LiveServer, label: str) -> int:
    """The seq of the session's newest event that the view shows as a node."""
    page = server.request("GET", f"sessions/{label}/transcript?tail=1&limit=50")["events"]
    return int([e for e in page if e["kind"] in SHOWN][-1]["seq"])


async def measure(server: LiveServer, short: str, long: str) -> dict[str, Any]:
    """Open each session ROUNDS times; then scroll the long one."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(120_000)
            await page.goto(f"{server.url}lab?token={server.token}", timeout=120_000)
            await page.locator(".lm-TabBar-tab[data-id='catty-sessions']").click()
            await page.locator(f".catty-Row[data-label='{long}']").wait_for()
            seqs = {label: last_seq(server, label) for label in (short, long)}
            opened: dict[str, list[float]] = {short: [], long: []}
            for _ in range(ROUNDS):
                for label in (short, long):
                    ms = await page.evaluate(OPEN_AND_PAINT, [label, seqs[label]])
                    opened[label].append(float(ms))
                    tab = page.locator(f".lm-TabBar-tab[data-id='catty-session-{label}']")
                    await tab.locator(".lm-TabBar-tabCloseIcon").click()
                    await page.locator(f"#catty-session-{label}").wait_for(state="detached")
            await page.evaluate(OPEN_AND_PAINT, [long, seqs[long]])
            await asyncio.sleep(0.5)
            idle = await page.evaluate(FRAMES, [long, 2000, False])
            scrolled = await page.evaluate(FRAMES, [long, 4000, True])
        finally:
            await browser.close()
    return {"opened": opened, "idle": idle, "scrolled": scrolled}


def percentile(values: list[float], q: float) -> float:
    """The Q-quantile of VALUES (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    """Run the benchmark and print its table."""
    if not Path(CHROMIUM).exists():
        print(f"bench_lab_transcript: no Chromium at {CHROMIUM}; `make test` installs it")
        return
    with tempfile.TemporaryDirectory(prefix="catty-bench-lab-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "root").mkdir()
        server = LiveServer(data_dir=tmp / "data", root_dir=tmp / "root", app="jupyterlab",
                            base_url=BASE_URL)  # fmt: skip
        server.start(timeout=120)
        try:
            short, long = make_sessions(server)
            long_id = server.request("GET", f"sessions/{long}")["id"]
            server.stop()
            t = time.perf_counter()
            grow_transcript(server.data_dir, long_id, EVENTS)
            grow_s = time.perf_counter() - t
            server.start(timeout=120)
            result = asyncio.run(measure(server, short, long))
        finally:
            server.stop()
    opened = result["opened"]
    base = statistics.median(opened[short])
    big = statistics.median(opened[long])
    print(
        f"\nJupyterLab panel: open a session and paint its newest events "
        f"(median of {ROUNDS}; transcript grown in {grow_s:.1f} s)"
    )
    print(f"{'session':<28}{'events':>8}{'median ms':>11}{'max ms':>9}{'ratio':>8}")
    print(
        f"{'one turn (baseline)':<28}{'~10':>8}{base:>11.0f}{max(opened[short]):>9.0f}{1.0:>8.2f}"
    )
    print(f"{'long':<28}{EVENTS:>8}{big:>11.0f}{max(opened[long]):>9.0f}{big / base:>8.2f}")
    verdict = "met" if big <= GOAL_MS else "missed"
    print(f"goal: newest events painted within {GOAL_MS:.0f} ms: {verdict} ({big:.0f} ms)")
    idle, scrolled = result["idle"]["times"][1:], result["scrolled"]["times"][1:]
    print("\nScrolling the long transcript upward (older pages load on the way)")
    print(f"{'frames':<28}{'count':>8}{'median ms':>11}{'p95 ms':>9}{'ratio':>8}")
    i_med, s_med = statistics.median(idle), statistics.median(scrolled)
    print(
        f"{'idle page (baseline)':<28}{len(idle):>8}{i_med:>11.1f}{percentile(idle, 0.95):>9.1f}{1.0:>8.2f}"
    )
    print(f"{'scrolling':<28}{len(scrolled):>8}{s_med:>11.1f}{percentile(scrolled, 0.95):>9.1f}"
          f"{s_med / i_med:>8.2f}")  # fmt: skip
    print(f"events in the view after scrolling: {result['scrolled']['events']}")


if __name__ == "__main__":
    main()
