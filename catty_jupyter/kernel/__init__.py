"""The user-facing Catty kernel: each cell is a message to a session, its outputs the transcript."""

from __future__ import annotations

from .kernel import CattyKernel

__all__ = ["CattyKernel"]
