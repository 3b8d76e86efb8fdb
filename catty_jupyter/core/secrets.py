"""Keep secret values out of everything catty writes: transcripts, logs, API responses."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .environments import MASK

MIN_SECRET_LENGTH = 4
"""Shorter values are not redacted: masking every `a` or `1` would garble the transcript, and a
value that short is no secret worth the name."""


class Redactor:
    """Replaces each secret value with the mask wherever it appears in text or JSON payloads."""

    def __init__(self, values: Iterable[str]) -> None:
        secrets = sorted({v for v in values if len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        # Longest first, so a secret containing another is masked whole.
        self._pattern = re.compile("|".join(map(re.escape, secrets))) if secrets else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        """TEXT with every secret value masked."""
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def payload(self, value: Any) -> Any:
        """A copy of a JSON-like VALUE with secrets masked in every string, keys included."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.payload(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.payload(v) for v in value]
        return value
