"""The demo model's script language, tested without a server or a CLI."""

from __future__ import annotations

from typing import Any

from catty_jupyter.demo.scenarios import (
    DEMO_PREFIX,
    SIDE_QUERY_TEXT,
    TOUR_COMMAND,
    TOUR_FILE,
    Reply,
    next_reply,
    parse_script,
    working_directory,
)

TOOLS = [{"name": "Bash"}, {"name": "Write"}, {"name": "Edit"}]
CWD = "/work/project"
# What Claude Code 2.1 sends: the environment sits in a message with role "system".
ENV_MESSAGE = {
    "role": "system",
    "content": f"# Environment\n - Primary working directory: {CWD}\n - Platform: linux",
}


def user(*texts: str) -> dict[str, Any]:
    """A user message made of text blocks."""
    return {"role": "user", "content": [{"type": "text", "text": t} for t in texts]}


def request(messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A Messages API body such as Claude Code sends."""
    return {"model": "claude-test", "tools": TOOLS, "messages": messages, **extra}


def result_for(reply: Reply, output: str = "ok", is_error: bool = False) -> dict[str, Any]:
    """The user message that answers every tool_use of a reply."""
    blocks = [
        {"type": "tool_result", "tool_use_id": b["id"], "content": output, "is_error": is_error}
        for b in reply.content
        if b["type"] == "tool_use"
    ]
    return {"role": "user", "content": blocks}


def run_turn(messages: list[dict[str, Any]], limit: int = 20) -> list[Reply]:
    """Drive one turn to its end, answering every tool call with "ok"; return the replies."""
    replies: list[Reply] = []
    while len(replies) < limit:
        reply = next_reply(request(messages))
        replies.append(reply)
        messages.append({"role": "assistant", "content": reply.content})
        if reply.stop_reason == "end_turn":
            return replies
        messages.append(result_for(reply))
    raise AssertionError("the turn never ended")


def tool_uses(replies: list[Reply]) -> list[dict[str, Any]]:
    """Every tool_use block of the replies, in order."""
    return [b for r in replies for b in r.content if b["type"] == "tool_use"]


def final_text(replies: list[Reply]) -> str:
    """The text of the last reply."""
    return "".join(b["text"] for b in replies[-1].content if b["type"] == "text")


def test_side_queries_without_tools_get_a_short_text() -> None:
    reply = next_reply({"model": "claude-haiku", "messages": [user("Write a title")]})
    assert reply.stop_reason == "end_turn"
    assert reply.content == [{"type": "text", "text": SIDE_QUERY_TEXT}]


def test_a_prompt_without_directives_gets_the_tour() -> None:
    replies = run_turn([user("hello"), ENV_MESSAGE])
    first = replies[0].content
    assert first[0]["type"] == "text" and "demo model" in first[0]["text"]
    assert "no API key" in first[0]["text"]
    uses = tool_uses(replies)
    assert [u["name"] for u in uses] == ["Bash", "Write"]
    assert uses[0]["input"]["command"] == TOUR_COMMAND
    assert uses[1]["input"]["file_path"] == f"{CWD}/{TOUR_FILE}"
    assert "demo agent" in uses[1]["input"]["content"]
    assert [r.stop_reason for r in replies] == ["tool_use", "tool_use", "end_turn"]
    assert final_text(replies).startswith(DEMO_PREFIX)


def test_directives_run_in_order_one_step_per_reply() -> None:
    prompt = "\n".join(
        [
            "Please do this:",
            "!bash echo hi",
            "!write notes/a.txt",
            "line one",
            "!bash not a directive inside the content",
            "!end",
            "!edit /abs/b.txt",
            "old: before",
            "new: after it",
            "!say all done",
        ]
    )
    replies = run_turn([user(prompt), ENV_MESSAGE])
    uses = tool_uses(replies)
    assert [u["name"] for u in uses] == ["Bash", "Write", "Edit"]
    assert uses[0]["input"] == {"command": "echo hi", "description": "Run echo hi"}
    assert uses[1]["input"] == {
        "file_path": f"{CWD}/notes/a.txt",
        "content": "line one\n!bash not a directive inside the content\n",
    }
    assert uses[2]["input"] == {
        "file_path": "/abs/b.txt",
        "old_string": "before",
        "new_string": "after it",
    }
    assert len(replies) == 4
    assert final_text(replies) == DEMO_PREFIX + "all done"


def test_say_rides_along_with_the_next_tool_step() -> None:
    replies = run_turn([user("!say first\n!bash true")])
    assert [b["type"] for b in replies[0].content] == ["text", "tool_use"]
    assert replies[0].content[0]["text"] == "first"
    assert final_text(replies).startswith(DEMO_PREFIX + "Done")


def test_bash_description_is_cut_to_sixty_characters() -> None:
    command = "echo " + "x" * 100
    (use,) = tool_uses(run_turn([user(f"!bash {command}")]))
    assert use["input"]["command"] == command
    assert use["input"]["description"] == f"Run {command}"[:60]


def test_relative_paths_stay_relative_without_a_working_directory() -> None:
    (use,) = tool_uses(run_turn([user("!write a.txt\nx\n!end")]))
    assert use["input"]["file_path"] == "a.txt"


def test_working_directory_is_found_in_every_place_claude_code_puts_it() -> None:
    assert working_directory("intro\nWorking directory: /a/b\nmore") == "/a/b"
    blocks = [{"type": "text", "text": "x"}, {"type": "text", "text": "Working directory: /c"}]
    assert working_directory(blocks) == "/c"
    assert working_directory([{"type": "text", "text": "x"}], [ENV_MESSAGE]) == CWD
    assert working_directory("nothing here") is None


def test_a_refused_tool_is_acknowledged_and_the_script_goes_on() -> None:
    messages = [user("!bash rm -rf /\n!bash echo next")]
    first = next_reply(request(messages))
    messages += [
        {"role": "assistant", "content": first.content},
        result_for(first, "<tool_use_error>no deleting today</tool_use_error>", is_error=True),
    ]
    second = next_reply(request(messages))
    note, use = second.content
    assert "refused" in note["text"] and '"no deleting today"' in note["text"]
    assert use["input"]["command"] == "echo next"


def test_a_refusal_in_the_last_step_reaches_the_final_text() -> None:
    messages = [user("!bash rm x")]
    first = next_reply(request(messages))
    messages += [
        {"role": "assistant", "content": first.content},
        result_for(first, "User said no", is_error=True),
    ]
    final = next_reply(request(messages))
    assert final.stop_reason == "end_turn"
    text = final.content[0]["text"]
    assert text.startswith(DEMO_PREFIX) and "refused" in text and "User said no" in text


def test_recall_lists_earlier_prompts_only() -> None:
    messages = [
        user("<system-reminder>\nnot a prompt\n</system-reminder>", "first prompt"),
        {"role": "assistant", "content": [{"type": "text", "text": "(demo model) ok"}]},
        {"role": "user", "content": "second\nprompt"},
        {"role": "assistant", "content": [{"type": "text", "text": "(demo model) ok"}]},
        user("!recall"),
    ]
    (reply,) = run_turn(messages)
    text = reply.content[0]["text"]
    assert text.startswith(DEMO_PREFIX)
    lines = text.splitlines()
    assert "- first prompt" in lines and "- second prompt" in lines
    assert "not a prompt" not in text and "- !recall" not in lines


def test_recall_without_earlier_prompts_says_so() -> None:
    (reply,) = run_turn([user("!recall")])
    assert "no earlier prompts" in reply.content[0]["text"]


def test_tool_results_with_reminders_do_not_count_as_a_new_prompt() -> None:
    messages = [user("!bash one\n!bash two")]
    first = next_reply(request(messages))
    results = result_for(first)
    results["content"].append({"type": "text", "text": "<system-reminder>x</system-reminder>"})
    messages += [{"role": "assistant", "content": first.content}, results]
    second = next_reply(request(messages))
    assert tool_uses([second])[0]["input"]["command"] == "two"


def test_progress_is_counted_by_assistant_messages_for_foreign_tool_ids() -> None:
    messages = [
        user("!bash one\n!say between\n!bash two\n!bash three"),
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash"}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
    ]
    reply = next_reply(request(messages))
    assert reply.content[0]["text"] == "between"
    assert tool_uses([reply])[0]["input"]["command"] == "two"


def test_slow_applies_to_text_after_it() -> None:
    script = parse_script("!say quick\n!slow 2.5\n!say slow\n!slow nonsense")
    assert [s.slow for s in script.steps] == [0.0, 2.5]
    assert script.slow == 2.5
    (reply,) = run_turn([user("!slow 3\n!say hello")])
    assert reply.slow == 3.0
    assert run_turn([user("!say hello")])[0].slow == 0.0


def test_only_known_directives_at_the_start_of_a_line_count() -> None:
    assert not parse_script("say !bash ls\n!bashful\n!unknown x").has_directives
    script = parse_script("  !bash ls -la  \n!say\n!write\n!end")
    assert [(s.kind, s.args) for s in script.steps] == [("bash", ("ls -la",))]


def test_edit_lines_may_repeat_and_end_is_optional() -> None:
    script = parse_script("!edit f\nold: a\nold:  b\nnew: c\n!end\n!say next")
    edit, say = script.steps
    assert edit.args == ("f", "a\n b", "c")
    assert say.args == ("next",)


def test_write_without_end_takes_the_rest_of_the_prompt() -> None:
    (step,) = parse_script("!write f\nalpha\n\nbeta").steps
    assert step.args == ("f", "alpha\n\nbeta\n")


def test_directives_without_steps_end_at_once() -> None:
    (reply,) = run_turn([user("!slow 1")])
    assert reply.stop_reason == "end_turn"
    assert reply.content[0]["text"].startswith(DEMO_PREFIX)


def test_an_interrupt_note_is_not_a_prompt() -> None:
    messages = [
        user("!bash one\n!bash two"),
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash"}]},
        user("[Request interrupted by user for tool use]"),
    ]
    reply = next_reply(request(messages))
    assert tool_uses([reply])[0]["input"]["command"] == "two"
