"""Parsing `%` cells and following a turn, without a kernel."""

from __future__ import annotations

import pytest

from catty_jupyter.kernel.commands import Command, UsageError, complete, parse
from catty_jupyter.kernel.outputs import TranscriptOutputs, TurnWatch


def test_a_plain_cell_is_a_message() -> None:
    assert parse("fix the tests\n%not a command") is None


def test_new_takes_options_and_keeps_the_prompt_as_written() -> None:
    cell = '%new --env demo --agent=shell don\'t split "this"\nsecond line'
    assert parse(cell) == Command(
        "new", options={"env": "demo", "agent": "shell"},
        text="don't split \"this\"\nsecond line",
    )  # fmt: skip
    assert parse("%new\nprompt below") == Command("new", text="prompt below")
    with pytest.raises(UsageError, match="unknown option --model"):
        parse("%new --model x hi")
    with pytest.raises(UsageError, match="--env needs a value"):
        parse("%new --env")


def test_commands_check_their_arguments() -> None:
    assert parse("%attach brave-tiger-1") == Command("attach", ["brave-tiger-1"])
    assert parse("%deny abc not now") == Command("deny", ["abc"], text="not now")
    with pytest.raises(UsageError, match="usage: %attach LABEL"):
        parse("%attach")
    with pytest.raises(UsageError, match="%status takes no arguments"):
        parse("%status now")
    with pytest.raises(UsageError, match="unknown command %frobnicate"):
        parse("%frobnicate")


def test_completion_of_command_names() -> None:
    assert complete("%s", 2) == (["%status", "%stop"], 0)
    assert complete("%stop x", 7) == ([], 7)


def test_a_turn_ends_at_idle_after_its_own_message() -> None:
    watch = TurnWatch("me")
    assert not watch.over({"kind": "status", "payload": {"activity": "idle"}})  # an old turn's
    assert not watch.over({"kind": "user", "seq": 7, "client": "me", "payload": {"text": "x"}})
    assert watch.is_own_message({"kind": "user", "seq": 7})
    assert not watch.over({"kind": "result", "payload": {}})
    assert watch.finishing
    assert watch.over({"kind": "status", "payload": {"activity": "idle"}})
    assert TurnWatch("me").over({"kind": "error", "payload": {"fatal": True}})


def test_tool_results_fill_in_their_call() -> None:
    view = TranscriptOutputs("l")
    call = {"kind": "tool_use", "payload": {"id": "t1", "name": "Bash", "input": {"command": "ls"}}}
    [shown] = view.outputs(call)
    assert shown.msg_type == "display_data"
    display_id = shown.content["transient"]["display_id"]
    for chunk in ("a\n", "b\n"):
        result = {"kind": "tool_result", "payload": {"tool_use_id": "t1", "output": chunk}}
        [update] = view.outputs(result)
    assert update.msg_type == "update_display_data"
    assert update.content["transient"]["display_id"] == display_id
    assert update.content["data"]["text/plain"] == "• Bash: ls\na\nb"
