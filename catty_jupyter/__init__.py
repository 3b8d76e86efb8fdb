"""catty-jupyter: coding agents in persistent, sandboxed sessions owned by the Jupyter server."""

from __future__ import annotations

from typing import Any

from ._version import __version__

__all__ = ["__version__"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Tell jupyter_server where the extension lives."""
    from .server.app import CattyExtension

    return [{"module": "catty_jupyter.server.app", "app": CattyExtension}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Tell `jupyter labextension develop` where the built JupyterLab extension is."""
    return [{"src": "labextension", "dest": "catty-jupyter"}]


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext catty_jupyter`: the `%catty` magics."""
    from .notebook.magics import load

    load(ipython)
