"""Running the Catty kernel through jupyter_client, and reading what its cells showed."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

OUTPUT_TYPES = ("stream", "display_data", "update_display_data", "error")


@contextlib.contextmanager
def catty_kernel(cwd: Path) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    """A running Catty kernel and a client connected to it."""
    km = KernelManager(kernel_name="catty")
    km.start_kernel(cwd=str(cwd))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run(kc: BlockingKernelClient, code: str, timeout: float = 120) -> tuple[dict[str, Any], list[dict[str, Any]]]:  # fmt: skip
    """Execute CODE; return the reply's content and the cell's output messages."""
    outputs: list[dict[str, Any]] = []

    def keep(msg: dict[str, Any]) -> None:
        if msg["msg_type"] in OUTPUT_TYPES:
            outputs.append(msg)

    reply = kc.execute_interactive(code, timeout=timeout, output_hook=keep)
    return reply["content"], outputs


def plain(outputs: list[dict[str, Any]]) -> str:
    """Everything the output messages say as text."""
    parts = []
    for msg in outputs:
        content = msg["content"]
        parts.append(content.get("text") or (content.get("data") or {}).get("text/plain") or "")
        parts.append(content.get("evalue") or "")
    return "\n".join(parts)


def label_in(text: str) -> str:
    """The label the kernel announced for a new session."""
    match = re.search(r"session ([a-z]+-[a-z]+-\d+) \(environment", text)
    assert match, f"no session label in {text!r}"
    return match.group(1)
