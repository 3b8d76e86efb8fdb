"""`jupyter catty …`: sessions from the terminal, talking to the running Jupyter server."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from .cli_env import add_env_parser
from .client import CattyClient, ClientError, ServerInfo, find_server

TERMINAL_STATES = ("stopped", "failed", "expired")


def render(event: dict[str, Any], full: bool = False, label: str = "LABEL") -> str | None:
    """One event as terminal text (None for events a reader does not need to see)."""
    kind, p = event["kind"], event.get("payload") or {}
    if kind == "user":
        return f"> {p.get('text', '')}"
    if kind == "assistant":
        return str(p["text"]) if p.get("text") else None
    if kind == "tool_use":
        inp = p.get("input") or {}
        shown = inp.get("command") or inp.get("file_path") or json.dumps(inp)[:200]
        return f"• {p.get('name')}: {shown}"
    if kind == "tool_result":
        out = str(p.get("output") or "")
        if not full and out.count("\n") > 20:
            lines = out.splitlines()
            out = "\n".join([*lines[:20], f"… {len(lines) - 20} more lines (log --full)"])
        return out.rstrip("\n") if out.strip() else None
    if kind == "permission_request":
        return (f"? permission to use {p.get('tool_name')}: {json.dumps(p.get('input'))[:200]}\n"
                f"  answer: jupyter catty allow|deny {label} {p.get('request_id')}")  # fmt: skip
    if kind == "permission_decision":
        return f"  {p.get('behavior')} by {event.get('client') or 'someone'} {p.get('message') or ''}".rstrip()
    if kind == "result":
        cost = p.get("total_cost_usd")
        extra = f", ${cost:.4f}" if isinstance(cost, int | float) else ""
        code = f", exit {p['exit_code']}" if "exit_code" in p else ""
        return f"✓ turn done ({(p.get('duration_ms') or 0) / 1000:.1f} s{extra}{code})"
    if kind == "setup_log":
        text = str(p.get("text") or "")
        return "\n".join(f"  setup| {line}" for line in text.splitlines()) or None
    if kind in ("system", "error"):
        msg = p.get("message")
        return f"{'!' if kind == 'error' else '·'} {msg}" if msg else None
    if kind == "status" and "focus" in p:
        return f"· {p.get('message')}"
    if kind == "status" and p.get("ready"):
        return "· agent ready"
    return None


def default_client_id() -> str:
    """This terminal's client identity: $CATTY_CLIENT, else `terminal@HOST`.

    One name for every command run here, so `new`, `send` and `attach` share input focus.
    """
    return os.environ.get("CATTY_CLIENT") or f"terminal@{socket.gethostname()}"


def _client(args: argparse.Namespace) -> CattyClient:
    token = args.token or os.environ.get("CATTY_TOKEN", "")
    server = ServerInfo(args.url, token) if args.url else find_server()
    if args.token and not args.url:
        server = ServerInfo(server.url, args.token)
    return CattyClient(server, client_id=args.client or default_client_id())


def _print_sessions(sessions: list[dict[str, Any]]) -> None:
    if not sessions:
        print('no sessions; start one with: jupyter catty new "PROMPT"')
        return
    now = time.time()
    print(f"{'LABEL':<26} {'STATE':<9} {'ACTIVITY':<8} {'AGENT':<7} {'ENV':<10} AGE")
    for s in sessions:
        age = int(now - s["created"])
        shown = (
            f"{age // 3600}h{age % 3600 // 60:02d}m"
            if age >= 3600
            else f"{age // 60}m{age % 60:02d}s"
        )
        print(f"{s['label']:<26} {s['state']:<9} {s.get('activity') or '-':<8} {s['agent']:<7} "
              f"{s['environment']:<10} {shown}")  # fmt: skip


async def follow(
    client: CattyClient, label: str, after: int, full: bool = False, present: bool = False
) -> None:
    """Print the session's events after AFTER as they happen, until the session ends."""
    async for event in client.follow(label, after=after, present=present):
        text = render(event, full, label)
        if text is not None:
            print(text, flush=True)
        if event["kind"] in ("error", "system") and client.get(label)["state"] in TERMINAL_STATES:
            return


def cmd_new(c: CattyClient, a: argparse.Namespace) -> None:
    """Start a session."""
    repo = None if a.empty or a.archive else str(Path(a.repo or ".").resolve())
    archive = c.upload(Path(a.archive))["upload"] if a.archive else None
    s = c.new(" ".join(a.prompt) or None, environment=a.env, agent=a.agent, repo=repo,
              archive=archive)  # fmt: skip
    if a.json:
        print(json.dumps(s))
        return
    print(s["label"], flush=True)
    print(f"  follow it: jupyter catty log --follow {s['label']}", file=sys.stderr)


def cmd_list(c: CattyClient, a: argparse.Namespace) -> None:
    """List sessions."""
    sessions = c.list_sessions(include_archived=a.all)
    if a.json:
        print(json.dumps(sessions))
    else:
        _print_sessions(sessions)


def cmd_send(c: CattyClient, a: argparse.Namespace) -> None:
    """Send a message."""
    c.send(a.label, " ".join(a.message))


def cmd_log(c: CattyClient, a: argparse.Namespace) -> None:
    """Print the transcript, and with --follow keep printing."""
    if a.json and not a.follow:
        print(json.dumps(c.transcript(a.label, after=a.after, limit=5000)))
        return
    if a.follow and c.get(a.label)["state"] not in TERMINAL_STATES:
        asyncio.run(follow(c, a.label, a.after, a.full))
        return
    for event in c.transcript(a.label, after=a.after, limit=5000):
        text = render(event, a.full, a.label)
        if text is not None:
            print(text)


def cmd_stop(c: CattyClient, a: argparse.Namespace) -> None:
    """Stop a session."""
    print(c.stop(a.label)["state"])


def cmd_interrupt(c: CattyClient, a: argparse.Namespace) -> None:
    """Interrupt the current turn."""
    c.interrupt(a.label)


def cmd_answer(c: CattyClient, a: argparse.Namespace) -> None:
    """Answer a permission request."""
    c.answer(a.label, a.request_id, a.command, a.message or "")


def cmd_resume(c: CattyClient, a: argparse.Namespace) -> None:
    """Resume a stopped, failed or expired session."""
    s = c.resume(a.label)
    print(s["state"], flush=True)
    print(f"  follow it: jupyter catty attach {a.label}", file=sys.stderr)


def cmd_archive(c: CattyClient, a: argparse.Namespace) -> None:
    """Archive a session, or bring it back with --undo."""
    s = c.archive(a.label, archived=not a.undo)
    print("archived" if s["archived"] else "not archived")


def cmd_delete(c: CattyClient, a: argparse.Namespace) -> None:
    """Delete a session for good, after confirmation."""
    if not a.yes:
        if not sys.stdin.isatty():
            raise ClientError(f"deleting {a.label} removes its workspace and transcript for "
                              "good; pass --yes to confirm")  # fmt: skip
        typed = input(f"Delete {a.label}, its workspace and transcript, for good? "
                      "Type its label to confirm: ").strip()  # fmt: skip
        if typed != a.label:
            raise ClientError("not confirmed; nothing was deleted")
    c.delete(a.label)
    print(f"deleted {a.label}")


def cmd_download(c: CattyClient, a: argparse.Namespace) -> None:
    """Save a session's workspace as a .tar.gz."""
    suffix = f"-{a.path.strip('/').replace('/', '-')}" if a.path else ""
    dest = Path(a.output or f"{a.label}{suffix}.tar.gz")
    size = c.download(a.label, dest, path=a.path)
    print(f"{dest} ({size} bytes)")


class _Progress:
    """Bytes moved so far, on one rewritten line of a terminal's stderr (silent elsewhere)."""

    def __init__(self, verb: str, total: int | None = None) -> None:
        self.verb, self.total = verb, total
        self.shown = sys.stderr.isatty()
        self.last = 0.0
        self.printed = False

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if not self.shown or now - self.last < 0.2:
            return
        self.last, self.printed = now, True
        of = f" of {_size(self.total)}" if self.total else ""
        print(f"\r  {self.verb} {_size(done)}{of}\033[K", end="", file=sys.stderr, flush=True)

    def end(self) -> None:
        """Leave the progress line."""
        if self.printed:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


def _size(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB" if size >= 1 << 20 else f"{size} bytes"


def cmd_export(c: CattyClient, a: argparse.Namespace) -> None:
    """Save a session as one file for `import` on another server."""
    dest = Path(a.output or f"{a.label}.catty")
    if dest.is_dir():
        dest = dest / f"{a.label}.catty"
    print(f"exporting {a.label} (its branch is bundled first)…", file=sys.stderr, flush=True)
    progress = _Progress("received")
    try:
        size = c.export(a.label, dest, progress=progress)
    finally:
        progress.end()
    print(f"{dest} ({_size(size)})")
    print(f"  on the other server: jupyter catty import {dest}", file=sys.stderr)


def cmd_import(c: CattyClient, a: argparse.Namespace) -> None:
    """Make a stopped session of an exported file."""
    path = Path(a.file)
    if not path.is_file():
        raise ClientError(f"{path}: no such file; make one with `jupyter catty export LABEL -o "
                          "FILE` on the server the session is on")  # fmt: skip
    progress = _Progress("sent", path.stat().st_size)
    try:
        s = c.import_session(path, progress=progress)
    finally:
        progress.end()
    if a.json:
        print(json.dumps(s))
        return
    print(s["label"], flush=True)
    said = [e for e in c.transcript(s["label"], newest=True, limit=5) if e["kind"] == "system"
            and e["payload"].get("imported")]  # fmt: skip
    if said:
        print(f"  {said[-1]['payload']['message']}", file=sys.stderr)
    print(f"  it is stopped; continue it with: jupyter catty resume {s['label']}", file=sys.stderr)


_COLORS = {"+": "\033[32m", "-": "\033[31m", "@": "\033[36m"}


def _painted(line: str, color: bool) -> str:
    """A patch line, green for +, red for -, cyan for @@ (file headers stay plain)."""
    code = _COLORS.get(line[:1]) if color and not line.startswith(("+++", "---")) else None
    return f"{code}{line}\033[0m" if code else line


def cmd_diff(c: CattyClient, a: argparse.Namespace) -> None:
    """Print a session's changes: +added -removed per file, the total, then the patches."""
    d = c.diff(a.label, stat=a.stat)
    if a.json:
        print(json.dumps(d))
        return
    color = sys.stdout.isatty()
    for f in d["files"]:
        name = f"{f['old_path']} => {f['path']}" if f.get("old_path") else f["path"]
        counts = "binary" if f["binary"] else _painted(f"+{f['added']}", color) + " " + _painted(
            f"-{f['removed']}", color)  # fmt: skip
        print(f"{counts} {name}")
    n = d["files_changed"]
    print(f"{n} file{'s' if n != 1 else ''} changed, +{d['added']} -{d['removed']}"
          + (" (the answer was cut short)" if d.get("truncated") else ""))  # fmt: skip
    if a.stat:
        return
    for f in d["files"]:
        text = f.get("notebook_diff") or f.get("patch") or ""
        if text:
            print()
            if f.get("notebook_diff"):
                print(f"notebook diff of {f['path']}:")
            for line in text.rstrip("\n").split("\n"):
                print(_painted(line, color))


def cmd_sync(c: CattyClient, a: argparse.Namespace) -> None:
    """Copy the files a session changed into a directory (and with --watch keep doing it)."""
    from .sync import sync, watch

    target = Path(a.dir) if a.dir else None
    if a.interval <= 0:
        raise ClientError("--interval must be a number of seconds above 0")
    if a.watch:
        watch(c, a.label, target, force=a.force, interval=a.interval,
              progress=lambda line: print(line, flush=True))  # fmt: skip
    else:
        sync(c, a.label, target, force=a.force)


def cmd_teleport(c: CattyClient, a: argparse.Namespace) -> None:
    """Check a session's branch out in this checkout and bring its conversation along."""
    from .teleport import TeleportError, teleport

    def say(line: str) -> None:
        if not a.json:
            print(f"  {line}", file=sys.stderr, flush=True)

    try:
        result = teleport(c, a.label, Path(a.dir or "."), stash=a.stash, progress=say)
    except TeleportError as exc:
        raise ClientError(str(exc)) from None
    if a.json:
        print(json.dumps(result.to_json()))
        return
    for note in result.notes:
        print(f"  note: {note}", file=sys.stderr)
    print(f"{result.checkout} is on {result.branch} at {result.commit[:12]}")
    if result.stash:
        print(f"  your changes are in {result.stash.split(':')[0]}; `git stash pop` brings "
              "them back")  # fmt: skip
    if result.resume_command:
        print(f"continue the conversation in {result.checkout}: {result.resume_command}")
    else:
        print(f"its transcript: jupyter catty log {result.label}")


def cmd_push(c: CattyClient, a: argparse.Namespace) -> None:
    """Push a session's branch to a remote of its source repository."""
    print(f"pushing {a.label}'s branch to {a.remote} (its uncommitted work committed first)…",
          file=sys.stderr, flush=True)  # fmt: skip
    pushed = c.push(a.label, a.remote)
    if a.json:
        print(json.dumps(pushed))
        return
    print(f"pushed {pushed['branch']} at {pushed['commit'][:12]} to {pushed['remote']} "
          f"({pushed['url']})")  # fmt: skip


def cmd_attach(c: CattyClient, a: argparse.Namespace) -> None:
    """Watch a session live; lines typed here are sent while this terminal holds focus."""
    from .attach import attach

    asyncio.run(attach(c, a.label, read_only=a.read_only, backlog=a.backlog))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `jupyter catty`."""
    parser = argparse.ArgumentParser(
        prog="jupyter catty",
        description="Coding agents in sandboxed sessions owned by your Jupyter server.",
    )
    parser.add_argument(
        "--url", help="the Jupyter server (default: $CATTY_URL, else the running one)"
    )
    parser.add_argument(
        "--token", help="its token (default: $CATTY_TOKEN, else from its runtime file)"
    )
    parser.add_argument(
        "--client", help="this terminal's client name (default: $CATTY_CLIENT or terminal@HOST)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("new", help="start a session on a copy of a repository")
    p.add_argument("prompt", nargs="*", help="the first message for the agent")
    p.add_argument("--agent", help="claude or shell (default: the environment's)")
    p.add_argument("--env", default="default", help="the environment (default: default)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--repo", help="the git repository to copy (default: here)")
    source.add_argument("--empty", action="store_true", help="start in an empty workspace instead")
    source.add_argument(
        "--archive", metavar="FILE", help="upload a .zip, .tar, .tar.gz, .tar.bz2 or .tar.xz and "
        "start on its files instead (one folder holding everything is dropped; no .git is kept)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the session as JSON")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("list", help="list your sessions")
    p.add_argument("--all", action="store_true", help="include archived sessions")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "send", help="send a message to a session's agent",
        description="Send MESSAGE to the agent; the review comments queued on the session's "
        "diff go with it (with comments queued, MESSAGE may be left out).",
    )  # fmt: skip
    p.add_argument("label")
    p.add_argument("message", nargs="*")
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("log", help="print a session's transcript")
    p.add_argument("label")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    p.add_argument("--after", type=int, default=0, help="only events after this seq")
    p.add_argument("--full", action="store_true", help="do not shorten long tool output")
    p.add_argument("--json", action="store_true", help="print the events as JSON")
    p.set_defaults(func=cmd_log)

    p = sub.add_parser("diff", help="show a session's changes against its base commit")
    p.add_argument("label")
    p.add_argument("--stat", action="store_true", help="only +added -removed per file")
    p.add_argument("--json", action="store_true", help="print the diff as JSON")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("stop", help="stop a session (its workspace and transcript stay)")
    p.add_argument("label")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("interrupt", help="interrupt the agent's current turn")
    p.add_argument("label")
    p.set_defaults(func=cmd_interrupt)

    p = sub.add_parser(
        "attach",
        help="watch a session live and type to it (when this terminal holds input focus)",
        description="Show the session's recent transcript, then follow it live. A line typed "
        "here is sent to the agent while this terminal holds input focus; /take takes it, "
        "/interrupt, /allow ID, /deny ID [MESSAGE], /quit (or Ctrl-D) detaches.",
    )
    p.add_argument("label")
    p.add_argument("--read-only", action="store_true", help="only watch; never take focus")
    p.add_argument("--backlog", type=int, default=30, help="recent events to show first")
    p.set_defaults(func=cmd_attach)

    p = sub.add_parser("resume", help="resume a stopped, failed or expired session")
    p.add_argument("label")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("archive", help="hide a session from `list` (list --all shows it)")
    p.add_argument("label")
    p.add_argument("--undo", action="store_true", help="bring it back to the list")
    p.set_defaults(func=cmd_archive)

    p = sub.add_parser("delete", help="delete a session, its workspace and transcript")
    p.add_argument("label")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser(
        "sync",
        help="copy the files a session changed into its source directory (or DIR)",
        description="Copy the files the session changed (committed or not) into DIR, by "
        "default the directory the session was made from. A local file that changed since the "
        "session started and that the session changed too is not overwritten: the whole sync "
        "is refused, naming each such file, unless --force. The session's branch is not "
        "changed.",
    )
    p.add_argument("label")
    p.add_argument("dir", nargs="?", help="the directory to write into (default: the source)")
    p.add_argument("--force", action="store_true", help="overwrite local changes too")
    p.add_argument("--watch", action="store_true", help="keep syncing as the session works")
    p.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                   help="with --watch, how often to look at the session (default: 2)")  # fmt: skip
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("download", help="save a session's workspace as a .tar.gz")
    p.add_argument("label")
    p.add_argument("--output", "-o", help="the file to write (default: LABEL.tar.gz)")
    p.add_argument("--path", help="only this directory of the workspace")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser(
        "teleport",
        help="check a session's branch out here, with its conversation",
        description="Fetch the session's branch catty/LABEL (the agent's uncommitted work "
        "committed onto it first, in a commit that says so) into this checkout of the session's "
        "repository and check it out. A claude session's conversation is installed where your "
        "own Claude Code finds it, so `claude --resume ID` here continues it; the transcript is "
        "saved in .git/catty/LABEL.jsonl. Refuses another repository, a fork, and uncommitted "
        "changes (unless --stash).",
    )
    p.add_argument("label")
    p.add_argument("--stash", action="store_true",
                   help="stash your uncommitted changes (untracked files too) first")  # fmt: skip
    p.add_argument("--dir", help="the checkout to teleport into (default: here)")
    p.add_argument("--json", action="store_true", help="print what was done as JSON")
    p.set_defaults(func=cmd_teleport)

    p = sub.add_parser(
        "push",
        help="push a session's branch to a remote of its source repository",
        description="Push catty/LABEL (the agent's uncommitted work committed onto it first, in "
        "a commit that says so) to a remote of the repository the session was made from, as "
        "the Jupyter server's user. Never forced: a remote branch that moved on is refused. "
        "Your checkout is not touched.",
    )
    p.add_argument("label")
    p.add_argument("--remote", default="origin", help="the remote's name (default: origin)")
    p.add_argument("--json", action="store_true", help="print what was pushed as JSON")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser(
        "export",
        help="save a session as one file, to import on another server",
        description="Write one file holding the session's workspace as a git bundle (every "
        "branch and tag; the agent's uncommitted work is committed onto its branch first), its "
        "transcript, the agent's own conversation and its environment's definition, with "
        "secret values left out. `jupyter catty import FILE` on another server makes a stopped "
        "session of it; `resume` there continues the conversation.",
    )
    p.add_argument("label")
    p.add_argument("--output", "-o", help="the file to write (default: LABEL.catty)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "import",
        help="make a stopped session of a file from `jupyter catty export`",
        description="Send an exported session to this server, which makes a stopped session of "
        "it: same label unless taken here, the workspace on its branch, the transcript, the "
        "conversation. An environment of the same name here is used; otherwise it is created "
        "from the file, and its secrets need values (`jupyter catty env edit`) before `resume`.",
    )
    p.add_argument("file", help="the .catty file")
    p.add_argument("--json", action="store_true", help="print the session as JSON")
    p.set_defaults(func=cmd_import)

    for verb in ("allow", "deny"):
        p = sub.add_parser(verb, help=f"{verb} a pending permission request")
        p.add_argument("label")
        p.add_argument("request_id")
        p.add_argument("--message", "-m", help="what to tell the agent")
        p.set_defaults(func=cmd_answer)

    add_env_parser(sub)

    p = sub.add_parser(
        "doctor",
        help="tell which isolation and limits this machine can enforce",
        description="Probe this machine (no server needed): bubblewrap and its namespaces, "
        "overlay layers for environment caches, the egress proxy, and how memory, CPU and disk "
        "limits are enforced. Exits 1 when sessions cannot be sandboxed here.",
    )
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.add_argument("--cgroup-parent", help="a delegated cgroup v2 directory to try")
    p.set_defaults(func=cmd_doctor, local=True)
    return parser


def cmd_doctor(_c: CattyClient | None, a: argparse.Namespace) -> None:
    """Print what this machine can enforce; exit 1 when it cannot sandbox sessions."""
    from .sandbox import capabilities

    caps = capabilities.probe(cgroup_parent=a.cgroup_parent)
    if a.json:
        print(json.dumps(capabilities.report_json(caps), indent=1))
    else:
        print(capabilities.format_report(caps).rstrip())
    if not any(c.name == "bubblewrap" and c.available for c in caps):
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> int:
    """Run `jupyter catty`; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        # Commands about this machine (doctor) need no server.
        args.func(None if getattr(args, "local", False) else _client(args), args)
    except ClientError as exc:
        print(f"jupyter catty: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
