"""Button actions of the notebook widgets, run off the kernel's main thread."""

from __future__ import annotations

import threading
from collections.abc import Callable

import ipywidgets as widgets

from ..client import ClientError
from . import render


def say(notice: widgets.HTML, text: str, error: bool = False) -> None:
    """Show TEXT (escaped) in a widget's NOTICE line; empty text clears it."""
    cls = "catty-error" if error else "catty-meta"
    notice.value = f"<div class='{cls}'>{render.esc(text)}</div>" if text else ""


def in_background(action: Callable[[], object], notice: widgets.HTML) -> None:
    """Run a button's ACTION on a thread of its own, its failure shown in NOTICE.

    A click is handled on the kernel's main thread; an API call there (a send may wait for a
    session to finish starting) would hold up every other cell and widget of the notebook.
    """

    def run() -> None:
        try:
            action()
            say(notice, "")
        except ClientError as exc:
            say(notice, str(exc), error=True)
        except Exception as exc:  # a widget bug: still say something rather than nothing
            say(notice, f"{type(exc).__name__}: {exc}", error=True)

    threading.Thread(target=run, name="catty-action", daemon=True).start()
