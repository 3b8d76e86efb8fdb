"""How code in a notebook kernel reaches the server that owns the sessions."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from ..client import CattyClient, find_server


def kernel_id() -> str | None:
    """The id of the kernel this code runs in (from its connection file), if it is one."""
    try:
        from ipykernel.connect import get_connection_file

        name = Path(get_connection_file()).stem
    except Exception:
        return None
    return name.removeprefix("kernel-") or None


def notebook_client_id() -> str:
    """This notebook's client identity for input focus: $CATTY_CLIENT, else `notebook-<kernel>`.

    One name per kernel, so every widget and magic in a notebook shares focus, and another
    notebook (or the same notebook in a second kernel) is another client.
    """
    if os.environ.get("CATTY_CLIENT"):
        return os.environ["CATTY_CLIENT"]
    kid = kernel_id()
    return f"notebook-{kid[:8]}" if kid else "notebook"


@cache
def notebook_client() -> CattyClient:
    """The client for the server that started this kernel.

    The extension puts `CATTY_URL` and `CATTY_TOKEN` into the environment of every kernel it
    starts; elsewhere the running server whose root contains the working directory is used.
    Raises `ClientError` saying how to point at a server when none is found.
    """
    return CattyClient(find_server(), client_id=notebook_client_id())
