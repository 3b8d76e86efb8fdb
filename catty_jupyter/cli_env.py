"""`jupyter catty env …`: list, show, create, edit and delete environments."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from .client import CattyClient, ClientError
from .core.environments import BadEnvironment, format_size, parse_dotenv
from .core.network import NETWORK_LEVELS


def _resources(res: dict[str, Any]) -> str:
    """`2 cpus, 4G memory` for a resources object; `-` when it sets no limit."""
    parts = []
    if res.get("cpus") is not None:
        parts.append(f"{res['cpus']:g} cpus")
    for key in ("memory", "disk"):
        if res.get(key) is not None:
            parts.append(f"{format_size(res[key])} {key}")
    return ", ".join(parts) or "-"


def cmd_env_list(c: CattyClient, a: argparse.Namespace) -> None:
    """List environments."""
    envs = c.list_environments()
    if a.json:
        print(json.dumps(envs))
        return
    width = max([len("NAME"), *(len(e["name"]) for e in envs)])
    print(f"{'NAME':<{width}} {'NETWORK':<8} {'AGENT':<7} {'VARS':<4} {'SETUP':<5} "
          f"{'RESOURCES':<28} READ-ONLY")  # fmt: skip
    for e in envs:
        setup = "yes" if e["setup_script"].strip() else "-"
        print(f"{e['name']:<{width}} {e['network']:<8} {e['agent']:<7} {len(e['variables']):<4} "
              f"{setup:<5} {_resources(e['resources']):<28} {'yes' if e['read_only'] else '-'}")  # fmt: skip


def cmd_env_show(c: CattyClient, a: argparse.Namespace) -> None:
    """Show one environment, secret values masked."""
    e = c.get_environment(a.name)
    if a.json:
        print(json.dumps(e))
        return
    network = e["network"]
    if network == "custom":
        allowed = ", ".join(e["allowed_domains"]) or "nothing"
        network += f" (allows {allowed}{', and the trusted list' if e['include_defaults'] else ''})"
    rows = [
        ("name", e["name"]), ("description", e["description"] or "-"), ("agent", e["agent"]),
        ("options", json.dumps(e["options"]) if e["options"] else "-"), ("network", network),
        ("resources", _resources(e["resources"])),
        ("read-only", "yes: built in, or defined by the administrator" if e["read_only"] else "no"),
        ("updated", datetime.fromtimestamp(e["updated"]).strftime("%Y-%m-%d %H:%M")
         if e["updated"] else "-"),
    ]  # fmt: skip
    for key, value in rows:
        print(f"{key + ':':<13}{value}")
    count, secrets = len(e["variables"]), len(e["secrets"])
    if count:
        hidden = f", {secrets} secret, shown as ********" if secrets else ""
        print(f"\n# env ({count} variable{'s' if count > 1 else ''}{hidden})")
        print(e["env"], end="")
    else:
        print("\n# env: none")
    print("\n# setup script" + ("" if e["setup_script"].strip() else ": none"))
    if e["setup_script"].strip():
        print(e["setup_script"], end="" if e["setup_script"].endswith("\n") else "\n")


def _read(path: str, what: str) -> str:
    """The text of PATH (`-`: standard input) for the --WHAT flag."""
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise ClientError(f"cannot read the {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ClientError(f"the {what} {path} is not UTF-8 text") from None


def _fields(a: argparse.Namespace, current: dict[str, Any] | None) -> dict[str, Any]:
    """The environment fields the flags give; with CURRENT (edit), merged into what is there."""
    if a.env_file == "-" and a.setup_script == "-":
        raise ClientError("only one of --env-file and --setup-script can read standard input")
    fields: dict[str, Any] = {}
    for key in ("agent", "network", "description", "include_defaults"):
        if getattr(a, key) is not None:
            fields[key] = getattr(a, key)
    if a.allow is not None:
        fields["allowed_domains"] = a.allow
        if current is None and a.network is None:
            fields["network"] = "custom"
    if a.env_file is not None:
        fields["env"] = _read(a.env_file, "env file")
    if a.setup_script is not None:
        fields["setup_script"] = _read(a.setup_script, "setup script")
    given = {k: getattr(a, k) for k in ("cpus", "memory", "disk") if getattr(a, k) is not None}
    if given:
        fields["resources"] = {**(current or {}).get("resources", {}), **given}
    if a.secret is not None:
        fields["secrets"] = _secrets(a.secret, current, fields.get("env"))
    return fields


def _secrets(named: list[str], current: dict[str, Any] | None, env: str | None) -> list[str]:
    """The secret names after an edit: those already secret stay so (while their variable does)
    and the named ones join them. Un-marking a secret is never a side effect."""
    names = set(named) | set((current or {}).get("secrets", []))
    if env is not None and current is not None:
        try:
            present = set(parse_dotenv(env))
        except BadEnvironment:
            return sorted(named)  # the server names the bad line
        names = set(named) | (names & present)
    return sorted(names)


def _named_file(a: argparse.Namespace, exc: ClientError) -> ClientError:
    """EXC, its message led by the .env file's name when that file has the bad line."""
    if exc.details.get("field") == "env" and a.env_file not in (None, "-"):
        return ClientError(f"{a.env_file}: {exc}", exc.status, exc.reason, exc.details)
    return exc


def cmd_env_create(c: CattyClient, a: argparse.Namespace) -> None:
    """Create an environment."""
    try:
        c.create_environment(a.name, **_fields(a, None))
    except ClientError as exc:
        raise _named_file(a, exc) from None
    print(f"created {a.name}")


def cmd_env_edit(c: CattyClient, a: argparse.Namespace) -> None:
    """Change the given fields of an environment."""
    current = c.get_environment(a.name)
    fields = _fields(a, current)
    if not fields:
        raise ClientError("nothing to change: give the flags to change (see "
                          "`jupyter catty env edit --help`)")  # fmt: skip
    try:
        c.update_environment(a.name, **fields)
    except ClientError as exc:
        raise _named_file(a, exc) from None
    print(f"updated {a.name}")


def cmd_env_delete(c: CattyClient, a: argparse.Namespace) -> None:
    """Delete an environment, after confirmation."""
    if not a.yes:
        question = (f"Delete environment {a.name}? Stopped sessions in it cannot resume until "
                    "one of that name exists again.")  # fmt: skip
        if not sys.stdin.isatty():
            raise ClientError(f"{question} Pass --yes to confirm")
        if input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
            raise ClientError("not confirmed; nothing was deleted")
    c.delete_environment(a.name)
    print(f"deleted {a.name}")


def _definition_flags(p: argparse.ArgumentParser, edit: bool) -> None:
    """The flags `create` and `edit` share; on edit, only those given change anything."""
    p.add_argument("--agent", help="the agent sessions run: claude, shell or any installed one"
                   + ("" if edit else " (default: claude)"))  # fmt: skip
    p.add_argument("--network", choices=NETWORK_LEVELS,
                   help="none: loopback only; trusted: package registries and source hosts; "
                   "full: anything; custom: the --allow list" + ("" if edit else
                   " (default: none, or custom with --allow)"))  # fmt: skip
    p.add_argument("--allow", action="append", metavar="DOMAIN",
                   help="a host custom allows; *.example.com allows its subdomains; repeat for "
                   "more" + ("; replaces the list" if edit else ""))  # fmt: skip
    p.add_argument("--include-defaults", action=argparse.BooleanOptionalAction, default=None,
                   help="with custom, also allow the trusted list")  # fmt: skip
    p.add_argument("--env-file", metavar="FILE",
                   help=".env file: KEY=value lines, # comments; quotes are kept as part of the "
                   "value; - reads standard input" + ("; replaces every variable (secrets sent "
                   "back as ******** keep their values)" if edit else ""))  # fmt: skip
    p.add_argument("--secret", action="append", metavar="NAME",
                   help="a variable whose value is never shown again; repeat for more"
                   + ("; adds to those already secret" if edit else ""))  # fmt: skip
    p.add_argument(
        "--setup-script",
        metavar="FILE",
        help="bash run before the agent starts; - reads standard input",
    )
    p.add_argument("--cpus", metavar="N", help="CPUs one session may use")
    p.add_argument("--memory", metavar="SIZE", help="memory one session may use, e.g. 4G")
    p.add_argument("--disk", metavar="SIZE", help="disk one session may fill, e.g. 10G")
    p.add_argument("--description", metavar="TEXT", help="what the environment is for")


def add_env_parser(sub: Any) -> None:
    """Add `env list|show|create|edit|delete` to the `jupyter catty` subcommands SUB."""
    env = sub.add_parser("env", help="list, show, create, edit or delete environments",
                         description="Environments are the recipes sessions start from: agent, "
                         "network, variables and secrets, setup script, resources.")  # fmt: skip
    verbs = env.add_subparsers(dest="env_command", metavar="ACTION", required=True)

    p = verbs.add_parser("list", help="list environments")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_env_list)

    p = verbs.add_parser("show", help="show an environment (secret values masked)")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_env_show)

    p = verbs.add_parser("create", help="create an environment")
    p.add_argument("name", help="lower-case letters, digits, -, _ and .")
    _definition_flags(p, edit=False)
    p.set_defaults(func=cmd_env_create)

    p = verbs.add_parser("edit", help="change an environment (only the flags given)")
    p.add_argument("name")
    _definition_flags(p, edit=True)
    p.set_defaults(func=cmd_env_edit)

    p = verbs.add_parser("delete", help="delete an environment no running session uses")
    p.add_argument("name")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_env_delete)
