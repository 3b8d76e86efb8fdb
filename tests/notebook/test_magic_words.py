"""How `%catty` reads its line: options as words, a prompt or message as text."""

from __future__ import annotations

import pytest

from catty_jupyter.notebook.magics import split_text


@pytest.mark.parametrize(
    ("line", "head", "text"),
    [
        ('new --env demo "fix the failing tests"', "new --env demo", "fix the failing tests"),
        ("new --agent shell --empty printf 'a\\nb\\n' > x", "new --agent shell --empty",
         "printf 'a\\nb\\n' > x"),
        ("send brave-tiger-1 fix the user's bug", "send brave-tiger-1", "fix the user's bug"),
        ("new --env=demo hi there", "new --env=demo", "hi there"),
        ("new --repo /src -- --looks-like-an-option", "new --repo /src", "--looks-like-an-option"),
        ("send brave-tiger-1", "send brave-tiger-1", ""),
        ("list --all", "list --all", None),
        ("show brave-tiger-1", "show brave-tiger-1", None),
    ],
)  # fmt: skip
def test_prompts_keep_their_quotes_and_backslashes(line: str, head: str, text: str | None) -> None:
    assert split_text(line) == (head, text)
