"""A permission request ends the cell; `%allow` / `%deny` answer it and show the rest of the turn."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.servers import LiveServer

from .kernels import catty_kernel, plain, run

pytestmark = pytest.mark.claude


def test_allow_and_deny_answer_the_agent_from_the_next_cell(
    served: LiveServer, tmp_path: Path
) -> None:
    with catty_kernel(tmp_path) as (_, kc):
        # The demo environment accepts edits, but asks before running a program.
        reply, outputs = run(kc, "%new --env demo !bash python3 -c 'print(6 * 7)'\n!say ran it")
        assert reply["status"] == "ok", reply
        text = plain(outputs)
        assert "? permission to use Bash" in text
        match = re.search(r"%allow (\w+) +or +%deny \1", text)
        assert match, text

        reply, outputs = run(kc, f"%allow {match.group(1)}")
        assert reply["status"] == "ok", reply
        text = plain(outputs)
        assert "\n42" in text  # the tool's output
        assert "(demo model) ran it" in text

        reply, outputs = run(kc, "!bash python3 -c 'print(1)'\n!say went on")
        request = re.search(r"%deny (\w+)", plain(outputs))
        assert request, plain(outputs)
        reply, outputs = run(kc, f"%deny {request.group(1)} not today")
        assert reply["status"] == "ok", reply
        text = plain(outputs)
        assert "deny by catty-kernel-" in text and "not today" in text
        assert "refused or failed" in text and "went on" in text  # the agent went on
