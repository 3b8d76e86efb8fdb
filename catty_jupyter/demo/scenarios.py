"""The demo model's script language: decide the next assistant message from a request body."""

from __future__ import annotations

import posixpath
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

Block = dict[str, Any]
"""One content block of a Messages API message."""
Message = dict[str, Any]
"""One message of a Messages API request."""

DEMO_PREFIX = "(demo model) "
"""Every final text starts with this, so every transcript says it came from the demo."""

SIDE_QUERY_TEXT = DEMO_PREFIX + "ok"
"""The answer to requests without tools (titles, summaries and other side queries)."""

TOUR_COMMAND = "ls -la && git status --short | head -20"
"""The command the tour runs."""
TOUR_FILE = "CATTY_DEMO.md"
"""The file the tour writes, relative to the working directory."""
TOUR_INTRO = (
    "Hi! I am the catty-jupyter demo model: a scripted stand-in for a real model, so no API key "
    "is needed. I will look around the working directory and leave a note."
)
"""The tour's opening text."""
TOUR_NOTE = (
    "# Written by the catty-jupyter demo agent\n"
    "\n"
    "A scripted demo model (no real AI, no API key) asked the agent to write this file,\n"
    "to show that its tool calls really run in this session.\n"
    "You can delete it.\n"
)
"""What the tour writes into TOUR_FILE."""
TOUR_SUMMARY = (
    f"I listed the working directory and wrote {TOUR_FILE}. Script your own turns with lines "
    "such as `!bash ls`, `!write notes.txt` ... `!end`, `!edit PATH` (with `old:` / `new:` lines), "
    "`!say TEXT`, `!slow SECONDS` and `!recall`."
)
"""The tour's closing text."""

TOOL_STEPS = frozenset({"bash", "write", "edit"})
"""Step kinds that become a tool_use (one per reply)."""
TEXT_STEPS = frozenset({"say", "recall"})
"""Step kinds that become text and ride along with the next reply."""

_DIRECTIVE = re.compile(r"^!(bash|write|edit|say|slow|recall)(?=\s|$)\s*(.*)$")
_EDIT_LINE = re.compile(r"^(old|new):(.*)$")
_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.DOTALL)
# Claude Code records interrupts as user text; they are not prompts of the user's own.
_INTERRUPT = re.compile(r"^\[Request interrupted by user[^\]]*\]\s*$", re.MULTILINE)
_WORKDIR = re.compile(r"^[\s\-*]*(?:Primary )?working directory:\s*(\S.*?)\s*$", re.I | re.M)
_TOOL_ERROR_TAG = re.compile(r"</?tool_use_error>")
# Tool-use ids carry the index of their step so progress survives however the CLI groups blocks.
_TOOL_ID = re.compile(r"^toolu_demo_(\d+)_")


@dataclass(frozen=True)
class Step:
    """One scripted step: a tool call (bash, write, edit) or a piece of text (say, recall)."""

    kind: str
    args: tuple[str, ...] = ()
    slow: float = 0.0


@dataclass(frozen=True)
class Script:
    """The steps parsed from one prompt, and the `!slow` pace in effect at its end."""

    steps: list[Step] = field(default_factory=list)
    slow: float = 0.0
    has_directives: bool = False


@dataclass(frozen=True)
class Reply:
    """The next assistant message: its content blocks, why it stops, and how slowly to stream."""

    content: list[Block]
    stop_reason: str
    slow: float = 0.0
    """Seconds over which to spread the streaming of the text blocks (0: at once)."""


def parse_script(prompt: str) -> Script:
    """Parse the directives of a prompt into steps; lines without a directive are ignored."""
    lines = prompt.splitlines()
    steps: list[Step] = []
    slow = 0.0
    found = False
    i = 0
    while i < len(lines):
        match = _DIRECTIVE.match(lines[i].strip())
        i += 1
        if match is None:
            continue
        found = True
        name, arg = match.group(1), match.group(2).strip()
        if name == "slow":
            slow = _seconds(arg, slow)
        elif name == "recall":
            steps.append(Step("recall", (), slow))
        elif name == "write":
            content, i = _write_body(lines, i)
            if arg:
                steps.append(Step("write", (arg, content), slow))
        elif name == "edit":
            old, new, i = _edit_body(lines, i)
            if arg:
                steps.append(Step("edit", (arg, old, new), slow))
        elif arg:  # bash, say
            steps.append(Step(name, (arg,), slow))
    return Script(steps, slow, found)


def _write_body(lines: list[str], i: int) -> tuple[str, int]:
    """The content of a `!write` (its lines up to `!end`) and the index after it."""
    body: list[str] = []
    while i < len(lines) and lines[i].strip() != "!end":
        body.append(lines[i])
        i += 1
    return "\n".join(body) + "\n", i + 1


def _edit_body(lines: list[str], i: int) -> tuple[str, str, int]:
    """The `old:` and `new:` texts of an `!edit` (repeated lines join) and the index after."""
    parts: dict[str, list[str]] = {"old": [], "new": []}
    while i < len(lines) and (match := _EDIT_LINE.match(lines[i].lstrip())):
        parts[match.group(1)].append(match.group(2).removeprefix(" "))
        i += 1
    if i < len(lines) and lines[i].strip() == "!end":
        i += 1
    return "\n".join(parts["old"]), "\n".join(parts["new"]), i


def tour_script() -> Script:
    """The built-in scenario for prompts without directives."""
    return Script(
        [
            Step("say", (TOUR_INTRO,)),
            Step("bash", (TOUR_COMMAND,)),
            Step("write", (TOUR_FILE, TOUR_NOTE)),
            Step("say", (TOUR_SUMMARY,)),
        ]
    )


def next_reply(body: dict[str, Any]) -> Reply:
    """Decide the next assistant message for one Messages API request body."""
    if not body.get("tools"):
        return Reply([text_block(SIDE_QUERY_TEXT)], "end_turn")
    messages: list[Message] = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    cwd = working_directory(body.get("system"), messages)
    index, prompt = current_prompt(messages)
    script = parse_script(prompt)
    if not script.has_directives:
        script = tour_script()
    after = messages[index + 1 :]
    texts = refusal_notes(after)
    slow = 0.0
    step_no = next_step(script.steps, after)
    while step_no < len(script.steps) and script.steps[step_no].kind in TEXT_STEPS:
        step = script.steps[step_no]
        texts.append(_step_text(step, messages[:index]))
        slow = max(slow, step.slow)
        step_no += 1
    if step_no < len(script.steps):
        content = [text_block(t) for t in texts]
        content.append(tool_use_block(script.steps[step_no], step_no, cwd))
        return Reply(content, "tool_use", slow)
    if not texts or not script.steps or script.steps[-1].kind in TOOL_STEPS:
        texts.append(_done_text(script))
    return Reply([text_block(DEMO_PREFIX + "\n\n".join(texts))], "end_turn", max(slow, script.slow))


def current_prompt(messages: list[Message]) -> tuple[int, str]:
    """Find the newest user message with text of its own: its index and that text."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "user":
            text = prompt_text(messages[index])
            if text:
                return index, text
    return -1, ""


def prompt_text(message: Message) -> str:
    """The user's own text in a message, without tool results, reminders or interrupt notes."""
    content = message.get("content")
    if isinstance(content, list):
        content = [b for b in content if isinstance(b, dict) and b.get("type") == "text"]
    raw = _text_of(content)
    return _INTERRUPT.sub("", _REMINDER.sub("", raw)).strip()


def earlier_prompts(messages: Iterable[Message]) -> list[str]:
    """Every user prompt in the messages, each squeezed onto one line."""
    prompts = (prompt_text(m) for m in messages if m.get("role") == "user")
    return [" ".join(p.split()) for p in prompts if p]


def working_directory(system: Any, messages: Iterable[Message] = ()) -> str | None:
    """The working directory Claude Code names in its system prompt or system messages, if any."""
    # Claude Code 2.1 puts its environment (" - Primary working directory: /x") in a message with
    # role "system" rather than in the system prompt; the newest mention wins.
    texts = [_text_of(system)]
    for message in messages:
        if message.get("role") == "system":
            texts.append(_text_of(message.get("content")))
        elif message.get("role") == "user":
            texts.extend(_REMINDER.findall(_text_of(message.get("content"))))
    found = [m.group(1) for text in texts for m in _WORKDIR.finditer(text)]
    return found[-1] if found else None


def next_step(steps: list[Step], after: list[Message]) -> int:
    """The index of the first step not yet done, judged from the messages after the prompt."""
    ids = [str(b.get("id", "")) for b in _blocks(after, "assistant", "tool_use")]
    tagged = [int(m.group(1)) for m in map(_TOOL_ID.match, ids) if m]
    if tagged:
        return max(tagged) + 1
    # Not our ids (a hand-made or foreign conversation): one tool step per assistant message.
    done = sum(1 for m in after if m.get("role") == "assistant")
    tools = [i for i, step in enumerate(steps) if step.kind in TOOL_STEPS]
    if done == 0:
        return 0
    return tools[done - 1] + 1 if done <= len(tools) else len(steps)


def refusal_notes(after: list[Message]) -> list[str]:
    """One sentence for every tool result with is_error in the newest user message."""
    if not after or after[-1].get("role") != "user":
        return []
    names = {b.get("id"): b.get("name", "tool") for b in _blocks(after, "assistant", "tool_use")}
    notes = []
    for result in _blocks(after[-1:], "user", "tool_result"):
        if result.get("is_error"):
            name = names.get(result.get("tool_use_id"), "tool")
            reason = _TOOL_ERROR_TAG.sub("", _text_of(result.get("content"))).strip()
            notes.append(f'The {name} tool was refused or failed: "{reason}". Going on.')
    return notes


def tool_use_block(step: Step, step_no: int, cwd: str | None) -> Block:
    """The tool_use content block for a tool step."""
    if step.kind == "bash":
        command = step.args[0]
        name, tool_input = "Bash", {"command": command, "description": f"Run {command}"[:60]}
    elif step.kind == "write":
        name = "Write"
        tool_input = {"file_path": absolute(step.args[0], cwd), "content": step.args[1]}
    else:
        path, old, new = step.args
        name = "Edit"
        tool_input = {"file_path": absolute(path, cwd), "old_string": old, "new_string": new}
    tool_id = f"toolu_demo_{step_no}_{uuid.uuid4().hex[:20]}"
    return {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}


def text_block(text: str) -> Block:
    """A text content block."""
    return {"type": "text", "text": text}


def absolute(path: str, cwd: str | None) -> str:
    """Make a path absolute against the working directory, when that is known."""
    if posixpath.isabs(path) or not cwd:
        return path
    return posixpath.normpath(posixpath.join(cwd, path))


def _step_text(step: Step, before: list[Message]) -> str:
    if step.kind == "say":
        return step.args[0]
    prompts = earlier_prompts(before)
    if not prompts:
        return "There were no earlier prompts in this conversation."
    return "Earlier prompts in this conversation:\n" + "\n".join(f"- {p}" for p in prompts)


def _done_text(script: Script) -> str:
    count = len(script.steps)
    if count == 0:
        return "The prompt had directives but no steps, so there was nothing to do."
    return f"Done: all {count} step{'s' if count != 1 else ''} of the script ran."


def _seconds(arg: str, default: float) -> float:
    try:
        value = float(arg.split()[0]) if arg else default
    except ValueError:
        return default
    # Bounded so a typo cannot hang a turn for hours.
    return min(max(value, 0.0), 600.0)


def _text_of(content: Any) -> str:
    """The text of a string or of a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return ""


def _blocks(messages: Iterable[Message], role: str, kind: str) -> Iterator[Block]:
    for message in messages:
        content = message.get("content")
        if message.get("role") == role and isinstance(content, list):
            yield from (b for b in content if isinstance(b, dict) and b.get("type") == kind)
