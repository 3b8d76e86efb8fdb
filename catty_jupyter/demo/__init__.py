"""The scripted demo model: a local Anthropic Messages API that needs no API key."""

from __future__ import annotations

from .server import DemoModelServer

__all__ = ["DemoModelServer"]
