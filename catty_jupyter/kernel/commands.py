"""The `%` commands of the Catty kernel: what a cell asks for, parsed."""

from __future__ import annotations

from dataclasses import dataclass, field

COMMANDS = {
    "new": "%new [--env ENV] [--agent AGENT] [--repo PATH] PROMPT   start a session with PROMPT",
    "attach": "%attach LABEL   make LABEL this kernel's session (and take input focus)",
    "status": "%status   the current session's state",
    "list": "%list   the sessions on the server",
    "allow": "%allow ID   allow a permission request",
    "deny": "%deny ID [MESSAGE]   deny a permission request, telling the agent why",
    "interrupt": "%interrupt   interrupt the agent's turn (the stop button does this too)",
    "stop": "%stop   stop the current session (its workspace and transcript stay)",
    "resume": "%resume   start the current session again after it stopped",
    "help": "%help   this list",
}
"""Each command and its one-line usage."""

USAGE = "\n".join(
    [
        "Each cell is a message to the current session (the first one starts a session).",
        *(f"  {line}" for line in COMMANDS.values()),
    ]
)


class UsageError(Exception):
    """A `%` cell that is not a command; the message says what is."""


@dataclass(frozen=True)
class Command:
    """One parsed `%` command."""

    name: str
    args: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    text: str = ""
    """The free text: a prompt, or a deny message."""


_NEW_OPTIONS = ("env", "agent", "repo")


def parse(cell: str) -> Command | None:
    """The command in CELL, or None when the cell is a message; raise UsageError if malformed."""
    stripped = cell.strip()
    if not stripped.startswith("%"):
        return None
    head, _, rest = stripped[1:].partition("\n")
    word, _, line = head.strip().partition(" ")
    name = word.strip().lower()
    if name not in COMMANDS:
        raise UsageError(f"unknown command %{word}\n\n{USAGE}")
    if name == "new":
        return _parse_new(line, rest)
    words = line.split()
    if name == "attach":
        if len(words) != 1 or rest.strip():
            raise UsageError(f"usage: {COMMANDS['attach']}")
        return Command(name, words)
    if name in ("allow", "deny"):
        if not words:
            raise UsageError(f"usage: {COMMANDS[name]}")
        message = " ".join([*words[1:], rest]).strip()
        return Command(name, words[:1], text=message)
    if words or rest.strip():
        raise UsageError(f"%{name} takes no arguments; usage: {COMMANDS[name]}")
    return Command(name)


def _parse_new(line: str, rest: str) -> Command:
    """`--env E`, `--agent A` and `--repo P` lead the first line; all the rest is the prompt.

    The prompt is never shell-split: quotes and apostrophes in it are the user's own.
    """
    options: dict[str, str] = {}
    words = line.split(" ")
    while words and words[0].startswith("--"):
        option, eq, value = words.pop(0)[2:].partition("=")
        if option not in _NEW_OPTIONS:
            raise UsageError(f"unknown option --{option}; usage: {COMMANDS['new']}")
        if not eq:
            while words and not words[0]:
                words.pop(0)
            if not words:
                raise UsageError(f"--{option} needs a value; usage: {COMMANDS['new']}")
            value = words.pop(0)
        options[option] = value
        while words and not words[0]:
            words.pop(0)
    prompt = "\n".join(part for part in (" ".join(words), rest) if part).strip()
    return Command("new", options=options, text=prompt)


def complete(code: str, cursor: int) -> tuple[list[str], int]:
    """Completions of a `%` command name at CURSOR, and where the completed text starts."""
    before = code[:cursor]
    if "\n" in before or not before.lstrip().startswith("%") or " " in before.strip():
        return [], cursor
    start = before.index("%")
    prefix = before[start + 1 :].lower()
    return [f"%{name}" for name in COMMANDS if name.startswith(prefix)], start
