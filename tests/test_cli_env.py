"""`jupyter catty env …` as a user runs it, in a subprocess, against a real running server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

Run = Callable[..., Awaitable[tuple[int, str, str]]]
SECRET = "sk-cli-never-shown-42"


@pytest.fixture
def catty(jp_serverapp: Any, http_server: Any, jp_http_port: int, jp_base_url: str) -> Run:
    """Run `jupyter catty ARGS` against the test server, with INPUT on its standard input."""
    env = {**os.environ, "CATTY_URL": f"http://127.0.0.1:{jp_http_port}{jp_base_url}",
           "CATTY_TOKEN": jp_serverapp.identity_provider.token}  # fmt: skip

    async def run(*args: str, input: str = "") -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "catty_jupyter.cli", *args, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(input.encode()), 120)
        return proc.returncode or 0, out.decode(), err.decode()

    return run


async def test_create_list_show_edit_delete(catty: Run, tmp_path: Path) -> None:
    env_file = tmp_path / "proj.env"
    env_file.write_text(f'# the model\nANTHROPIC_API_KEY={SECRET}\nMODE="fast"\n')
    setup = tmp_path / "setup.sh"
    setup.write_text("pip install -e .\n")
    code, out, err = await catty(
        "env", "create", "proj", "--allow", "pypi.org", "--allow", "*.example.com",
        "--include-defaults", "--env-file", str(env_file), "--secret", "ANTHROPIC_API_KEY",
        "--setup-script", str(setup), "--agent", "shell", "--cpus", "2", "--memory", "4G",
        "--description", "my project",
    )  # fmt: skip
    assert code == 0 and out.strip() == "created proj", err

    code, out, err = await catty("env", "list")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:6] == ["NAME", "NETWORK", "AGENT", "VARS", "SETUP", "RESOURCES"]
    assert lines[1].split()[0] == "default" and lines[1].split()[-1] == "yes"  # read-only
    proj = next(line for line in lines if line.startswith("proj "))
    assert proj.split()[:5] == ["proj", "custom", "shell", "2", "yes"]
    assert "2 cpus, 4G memory" in proj and proj.split()[-1] == "-"
    code, out, err = await catty("env", "list", "--json")
    assert code == 0 and "proj" in [e["name"] for e in json.loads(out)]

    code, out, err = await catty("env", "show", "proj")
    assert code == 0, err
    assert "network:     custom (allows pypi.org, *.example.com, and the trusted list)" in out
    assert "ANTHROPIC_API_KEY=********\n" in out and 'MODE="fast"\n' in out
    assert "# setup script\npip install -e .\n" in out and "description: my project" in out
    code, out, err = await catty("env", "show", "proj", "--json")
    shown = json.loads(out)
    assert shown["secrets"] == ["ANTHROPIC_API_KEY"] and shown["resources"]["cpus"] == 2

    # Edit from standard input, sending the masked value back: it keeps its value.
    code, out, err = await catty("env", "edit", "proj", "--env-file", "-", "--memory", "1G",
                                 input=shown["env"] + "EXTRA=1\n")  # fmt: skip
    assert code == 0 and out.strip() == "updated proj", err
    code, out, err = await catty("env", "show", "proj", "--json")
    edited = json.loads(out)
    assert edited["secrets"] == ["ANTHROPIC_API_KEY"] and "EXTRA=1\n" in edited["env"]
    assert edited["resources"] == {"cpus": 2, "memory": 1 << 30, "disk": None}
    assert edited["description"] == "my project" and edited["network"] == "custom"
    code, out, err = await catty("env", "edit", "proj", "--secret", "MODE")
    assert code == 0, err
    code, out, err = await catty("env", "show", "proj", "--json")
    assert json.loads(out)["secrets"] == ["ANTHROPIC_API_KEY", "MODE"]
    code, out, err = await catty("env", "edit", "proj")
    assert code == 1 and "nothing to change" in err

    code, out, err = await catty("env", "delete", "proj")  # no terminal to confirm on
    assert code == 1 and "--yes" in err
    code, out, err = await catty("env", "delete", "proj", "--yes")
    assert code == 0 and out.strip() == "deleted proj", err
    code, out, err = await catty("env", "show", "proj")
    assert code == 1 and "no environment 'proj'" in err and "default" in err
    code, out, err = await catty("env", "list", "--json")
    assert SECRET not in out


async def test_errors_say_what_is_wrong(catty: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.env"
    bad.write_text(f"GOOD=1\n\nKEY={SECRET}\nthis line has no equals sign\n")
    code, out, err = await catty("env", "create", "broken", "--env-file", str(bad))
    assert code == 1 and out == ""
    assert f"{bad}: line 4: " in err and SECRET not in err
    code, out, err = await catty("env", "create", "broken", "--env-file", str(tmp_path / "no"))
    assert code == 1 and "cannot read the env file" in err
    code, out, err = await catty("env", "create", "broken", "--memory", "lots")
    assert code == 1 and "512M" in err
    code, out, err = await catty("env", "create", "broken", "--network", "internet")
    assert code == 2 and "invalid choice" in err
    code, out, err = await catty("env", "show", "broken")
    assert code == 1  # nothing was made

    code, out, err = await catty("env", "edit", "default", "--network", "none")
    assert code == 1 and "built in" in err
    code, out, err = await catty("env", "delete", "default", "--yes")
    assert code == 1 and "built in" in err
    code, out, err = await catty("env", "create", "default")
    assert code == 1 and "already exists" in err


async def test_delete_is_refused_while_a_session_uses_it(catty: Run) -> None:
    code, out, err = await catty("env", "create", "busy", "--agent", "shell")
    assert code == 0, err
    code, out, err = await catty("new", "--env", "busy", "--empty", "--json", "echo hi")
    assert code == 0, err
    label = json.loads(out)["label"]
    code, out, err = await catty("env", "delete", "busy", "--yes")
    assert code == 1 and label in err and "stop or delete" in err
    assert (await catty("stop", label))[1].strip() == "stopped"
    code, out, err = await catty("env", "delete", "busy", "--yes")
    assert code == 0, err


def test_log_shows_setup_output_line_by_line() -> None:
    from catty_jupyter.cli import render

    shown = render({"kind": "setup_log", "payload": {"text": "Reading package lists...\nDone"}})
    assert shown == "  setup| Reading package lists...\n  setup| Done"
