"""`%catty` and `%%catty`: sessions from a notebook cell.

`%load_ext catty_jupyter` registers them. Each subcommand is one call of the Python client;
the ones with something to watch return a widget (transcript, diff, session list, environment
editor) that keeps itself up to date: shown as the cell's result, or kept with
`view = %catty show LABEL`.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import subprocess
from pathlib import Path
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class

from ..client import CattyClient, ClientError
from .connection import notebook_client

USAGE = """\
%catty new [--env E] [--agent A] [--repo PATH | --empty] PROMPT
                                  start a session (on this notebook's git repository)
%catty list [--all]               the session list
%catty show LABEL                 a session's live transcript
%catty send LABEL MESSAGE         send a message (queued line comments go with it)
%catty diff LABEL                 what the session changed; comment on lines
%catty stop LABEL                 stop a session (its workspace and transcript stay)
%catty resume LABEL               resume a stopped, failed or expired session
%catty download LABEL [-o FILE]   save its workspace as a .tar.gz
%catty teleport LABEL [--stash]   check its branch out in this repository, with its transcript
                                  (and, for claude, the conversation for `claude --resume`)
%catty env [NAME]                 list environments, or edit (or create) NAME
%%catty setup ENV                 the cell's body becomes ENV's setup script
%%catty new [OPTIONS] / %%catty send LABEL
                                  the cell's body is the prompt or message
%catty connect URL [TOKEN]        talk to another Jupyter server"""


CELL_COMMANDS = ("setup", "new", "send")
"""Subcommands that take the cell's body (`%%catty …`)."""


class UsageError(Exception):
    """The magic's arguments are wrong; the message says how, and usage follows."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="%catty", add_help=False)
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("new", add_help=False)
    p.add_argument("--env")
    p.add_argument("--agent")
    p.add_argument("--repo")
    p.add_argument("--empty", action="store_true")
    p.add_argument("prompt", nargs=argparse.REMAINDER)
    p = sub.add_parser("list", add_help=False)
    p.add_argument("--all", action="store_true")
    for name in ("show", "diff", "stop", "resume"):
        sub.add_parser(name, add_help=False).add_argument("label")
    p = sub.add_parser("send", add_help=False)
    p.add_argument("label")
    p.add_argument("message", nargs=argparse.REMAINDER)
    p = sub.add_parser("download", add_help=False)
    p.add_argument("label")
    p.add_argument("-o", "--output")
    p = sub.add_parser("teleport", add_help=False)
    p.add_argument("label")
    p.add_argument("--stash", action="store_true")
    sub.add_parser("env", add_help=False).add_argument("name", nargs="?")
    sub.add_parser("setup", add_help=False).add_argument("name")
    p = sub.add_parser("connect", add_help=False)
    p.add_argument("url")
    p.add_argument("token", nargs="?", default="")
    sub.add_parser("help", add_help=False)
    return parser


_TAKES_VALUE = ("--env", "--agent", "--repo")
"""Options of `new` followed by a value."""


def split_text(line: str) -> tuple[str, str | None]:
    """LINE as (command and options, free text) for `new` and `send`, else (LINE, None).

    A prompt is text, not shell words: it keeps its own quotes and backslashes
    (`echo 'a  b'`, "fix the user's bug"); only quotes around the whole of it are dropped.
    """
    rest = line.strip()
    first = rest.split(maxsplit=1)
    if not first or first[0] not in ("new", "send"):
        return line, None
    head = [first[0]]
    rest = first[1] if len(first) > 1 else ""
    needs = 1 if first[0] == "send" else 0  # send's LABEL
    while rest:
        word, _, after = rest.partition(" ")
        if needs:
            needs -= 1
        elif word in _TAKES_VALUE:
            needs = 1
        elif word == "--":  # the prompt starts after it, even with dashes of its own
            rest = after.lstrip()
            break
        elif word != "--empty" and not word.startswith(tuple(f"{o}=" for o in _TAKES_VALUE)):
            break
        head.append(word)
        rest = after.lstrip()
    if len(rest) >= 2 and rest[0] == rest[-1] and rest[0] in "'\"":
        with contextlib.suppress(ValueError):
            words = shlex.split(rest)
            if len(words) == 1:
                rest = words[0]
    return " ".join(head), rest


def source_repo(cwd: Path) -> str | None:
    """The git repository holding CWD (a session works on a copy of it), or None."""
    try:
        out = subprocess.run(["git", "-C", str(cwd), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@magics_class
class CattyMagics(Magics):
    """The `%catty` line magic and the `%%catty setup` cell magic."""

    def client(self) -> CattyClient:
        """The client for this kernel's server (found on first use)."""
        return notebook_client()

    @line_cell_magic
    def catty(self, line: str, cell: str | None = None) -> Any:
        """Run a catty subcommand; `%catty` alone prints the usage."""
        head, text = split_text(line)
        try:
            words = shlex.split(head)
        except ValueError as exc:
            print(f"%catty: {exc}\n\n{USAGE}")
            return None
        if not words or words[0] in ("help", "-h", "--help"):
            print(USAGE)
            return None
        try:
            args = _parser().parse_args(words)
        except UsageError as exc:
            print(f"%catty: {exc}\n\n{USAGE}")
            return None
        if text is not None:
            args.prompt = args.message = [text]
        if args.command == "setup" and cell is None:
            print(f"%catty setup is a cell magic: %%catty setup ENV\n\n{USAGE}")
            return None
        if cell is not None and args.command not in CELL_COMMANDS:
            print(f"%%catty {args.command} is a line magic: %catty {args.command} …\n\n{USAGE}")
            return None
        try:
            return getattr(self, f"_{args.command}")(args, cell)
        except (ClientError, UsageError) as exc:
            print(f"%catty {args.command}: {exc}")
            return None

    # -- subcommands (each returns what the cell shows, or None) --------------------------------

    def _new(self, a: argparse.Namespace, cell: str | None) -> Any:
        from .transcript import TranscriptView

        if a.repo and a.empty:
            raise UsageError("use --repo or --empty, not both")
        repo = None if a.empty else a.repo or source_repo(Path.cwd())
        client = self.client()
        prompt = _text(a.prompt, cell) or None
        session = client.new(prompt, environment=a.env, agent=a.agent,
                             repo=str(Path(repo).resolve()) if repo else None)  # fmt: skip
        source = f"a copy of {repo}" if repo else "an empty workspace"
        print(f"{session['label']}  (environment {session['environment']}, {source})")
        return TranscriptView(client, session["label"]).open_session()

    def _list(self, a: argparse.Namespace, _cell: str | None) -> Any:
        from .sessions import SessionList

        return SessionList(self.client(), include_archived=a.all).watch()

    def _show(self, a: argparse.Namespace, _cell: str | None) -> Any:
        from .transcript import TranscriptView

        return TranscriptView(self.client(), a.label).open_session()

    def _send(self, a: argparse.Namespace, cell: str | None) -> None:
        self.client().send(a.label, _text(a.message, cell))
        print(f"sent to {a.label}")

    def _diff(self, a: argparse.Namespace, _cell: str | None) -> Any:
        from .diffview import DiffView

        return DiffView(self.client(), a.label).refresh()

    def _stop(self, a: argparse.Namespace, _cell: str | None) -> None:
        session = self.client().stop(a.label)
        print(f"{session['label']} is {session['state']}; `%catty resume {session['label']}` "
              "brings it back")  # fmt: skip

    def _resume(self, a: argparse.Namespace, _cell: str | None) -> None:
        session = self.client().resume(a.label)
        print(f"{session['label']} is {session['state']}")

    def _download(self, a: argparse.Namespace, _cell: str | None) -> None:
        dest = Path(a.output or f"{a.label}.tar.gz")
        size = self.client().download(a.label, dest)
        print(f"saved {dest} ({size} bytes)")

    def _teleport(self, a: argparse.Namespace, _cell: str | None) -> Any:
        from .teleportview import TeleportPanel

        checkout = Path(source_repo(Path.cwd()) or Path.cwd())
        return TeleportPanel(self.client(), a.label, checkout).run(stash=a.stash)

    def _env(self, a: argparse.Namespace, _cell: str | None) -> Any:
        if a.name:
            from .envedit import EnvironmentEditor

            return EnvironmentEditor(self.client(), a.name)
        for env in self.client().list_environments():
            lock = " (read-only)" if env.get("read_only") else ""
            print(f"{env['name']:<20} {env.get('agent') or '':<8} network={env['network']:<8}"
                  f" {env.get('description') or ''}{lock}".rstrip())  # fmt: skip

    def _setup(self, a: argparse.Namespace, cell: str | None) -> None:
        client = self.client()
        script = cell or ""
        try:
            client.update_environment(a.name, setup_script=script)
            verb = "updated"
        except ClientError as exc:
            if exc.status != 404:
                raise
            client.create_environment(a.name, setup_script=script)
            verb = "created"
        lines = len(script.splitlines())
        print(f"{a.name}: setup script {verb} ({lines} lines); the next session in it runs it "
              "once, later ones reuse the result")  # fmt: skip

    def _connect(self, a: argparse.Namespace, _cell: str | None) -> None:
        import os

        os.environ["CATTY_URL"], os.environ["CATTY_TOKEN"] = a.url, a.token
        notebook_client.cache_clear()
        sessions = self.client().list_sessions()
        print(f"connected to {a.url}: {len(sessions)} sessions")

    def _help(self, _a: argparse.Namespace, _cell: str | None) -> None:
        print(USAGE)


def _text(words: list[str], cell: str | None) -> str:
    """A prompt or message: the words after the command, then the cell's body when there is one
    (so a prompt can span lines)."""
    parts = [" ".join(words), (cell or "").strip("\n")]
    return "\n".join(p for p in parts if p)


def load(ipython: Any) -> None:
    """Register the magics with IPYTHON."""
    ipython.register_magics(CattyMagics)
