"""The journal's last seq (read from its end) and the input-focus rules, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from catty_jupyter.core.focus import Focus
from catty_jupyter.core.journal import Journal


def test_last_seq_comes_from_the_end_of_a_long_journal_and_skips_a_torn_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.jsonl"
    writer = Journal(path)
    for i in range(3000):
        writer.append("assistant", {"text": f"line {i} " + "x" * 40})
    with path.open("ab") as f:
        f.write(b'{"seq": 3001, "kind": "assis')  # a writer killed mid-line
    assert Journal(path).last_seq() == 3000
    # The next writer cuts the torn line and goes on from there.
    event = Journal(path).append("user", {"text": "after"})
    assert event.seq == 3001
    assert [e.seq for e in Journal(path).read(after=2998)] == [2999, 3000, 3001]
    assert Journal(tmp_path / "missing.jsonl").last_seq() == 0


def test_focus_holder_grace_and_taking() -> None:
    focus = Focus(grace=60)
    assert focus.take("desk", now=0) is None
    focus.connect("desk", now=0)
    assert focus.current(1000) == "desk"  # connected: no grace period runs
    focus.disconnect("desk", now=1000)
    assert focus.expires() == 1060
    assert focus.current(1059) == "desk" and focus.current(1060) is None
    focus.seen("desk", now=1050)  # acting again restarts the grace period
    assert focus.current(1100) == "desk"
    assert focus.take("phone", now=1101) == "desk"
    assert focus.to_json(1101) == {"holder": "phone", "connected": False, "since": 1101,
                                   "expires": 1161}  # fmt: skip
    focus.connect("phone", 1102)
    focus.connect("phone", 1102)
    focus.disconnect("phone", 1103)
    assert focus.connected("phone")  # one of its two streams is still open
    assert focus.release() == "phone" and focus.to_json(1104)["holder"] is None


@pytest.mark.parametrize("grace", [0.0, 5.0])
def test_a_lapsed_holder_is_nobody(grace: float) -> None:
    focus = Focus(grace=grace)
    focus.take("desk", now=0)
    assert focus.lapsed(grace) and focus.current(grace) is None
