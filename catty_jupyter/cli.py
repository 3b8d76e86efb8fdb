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
    repo = None if a.empty else str(Path(a.repo).resolve())
    s = c.new(" ".join(a.prompt) or None, environment=a.env, agent=a.agent, repo=repo)
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
    """Resume a stopped or failed session."""
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
    p.add_argument("--repo", default=".", help="the git repository to copy (default: here)")
    p.add_argument("--empty", action="store_true", help="start in an empty workspace instead")
    p.add_argument("--json", action="store_true", help="print the session as JSON")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("list", help="list your sessions")
    p.add_argument("--all", action="store_true", help="include archived sessions")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("send", help="send a message to a session's agent")
    p.add_argument("label")
    p.add_argument("message", nargs="+")
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

    p = sub.add_parser("resume", help="resume a stopped or failed session")
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

    p = sub.add_parser("download", help="save a session's workspace as a .tar.gz")
    p.add_argument("label")
    p.add_argument("--output", "-o", help="the file to write (default: LABEL.tar.gz)")
    p.add_argument("--path", help="only this directory of the workspace")
    p.set_defaults(func=cmd_download)

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
