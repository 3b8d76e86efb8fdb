"""Environments over REST: create, list, show, change and delete; secrets never come back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from catty_jupyter.core.environments import Environment
from catty_jupyter.core.errors import CattyError
from catty_jupyter.core.store import Store
from catty_jupyter.server.environments import EnvironmentRegistry
from tests.conftest import results

SECRET = "sk-ant-do-not-show-7f3a9c"
ADMIN_SECRET = "admin-token-5e1b"


@pytest.fixture
def catty_config() -> dict[str, Any]:
    """An administrator's environment, with a secret, beside the built-in ones."""
    return {
        "environments": {
            "team": {"agent": "shell", "network": "trusted", "description": "the team's",
                     "env": {"TEAM_TOKEN": ADMIN_SECRET, "REGION": "eu"},
                     "secrets": ["TEAM_TOKEN"]},
        },
    }  # fmt: skip


class Seen:
    """Every response body a test got, to check that no secret was ever among them."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.bodies: list[str] = []

    async def __call__(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        code, data = await self.api(method, path, body, **params)
        self.bodies.append(json.dumps(data))
        return code, data

    def assert_no_secret(self) -> None:
        for body in self.bodies:
            assert SECRET not in body and ADMIN_SECRET not in body, body


def registry(jp_serverapp: Any) -> Any:
    """The extension's environment registry (to see what is stored, secrets included)."""
    return jp_serverapp.web_app.settings["catty_manager"].environments


async def test_create_list_show_change_delete(api: Any, jp_serverapp: Any) -> None:
    call = Seen(api)
    dotenv = f'# for the model\nANTHROPIC_API_KEY={SECRET}\nMODE="fast"\n'
    code, env = await call("POST", "environments", {
        "name": "proj", "agent": "shell", "network": "custom",
        "allowed_domains": ["pypi.org", "*.githubusercontent.com"], "env": dotenv,
        "secrets": ["ANTHROPIC_API_KEY"], "setup_script": "pip install -e .\n",
        "resources": {"cpus": 2, "memory": "4G"}, "description": "my project",
    })  # fmt: skip
    assert code == 201, env
    assert env["name"] == "proj" and env["read_only"] is False and env["network"] == "custom"
    assert env["env"] == 'ANTHROPIC_API_KEY=********\nMODE="fast"\n'
    assert env["resources"] == {"cpus": 2.0, "memory": 4 << 30, "disk": None}

    code, listing = await call("GET", "environments")
    names = [e["name"] for e in listing["environments"]]
    assert code == 200 and names[0] == "default" and {"demo", "team", "proj"} <= set(names)
    code, shown = await call("GET", "environments/proj")
    assert code == 200 and shown == env

    code, changed = await call("PATCH", "environments/proj", {"description": "renamed"})
    assert code == 200 and changed["description"] == "renamed"
    assert changed["setup_script"] == "pip install -e .\n" and changed["env"] == env["env"]
    # What an editor got back, sent again with one more line: the secret keeps its value.
    code, changed = await call("PATCH", "environments/proj",
                               {**changed, "env": changed["env"] + "EXTRA=1\n"})  # fmt: skip
    assert code == 200 and changed["secrets"] == ["ANTHROPIC_API_KEY"]
    assert registry(jp_serverapp).get("proj").env == {
        "ANTHROPIC_API_KEY": SECRET, "MODE": '"fast"', "EXTRA": "1",
    }  # fmt: skip
    # Leaving a secret out of env removes it, and it is secret no more.
    code, changed = await call("PATCH", "environments/proj", {"env": "MODE=slow\n"})
    assert code == 200 and changed["secrets"] == [] and changed["env"] == "MODE=slow\n"

    code, nothing = await call("DELETE", "environments/proj")
    assert code == 204 and nothing is None
    code, err = await call("GET", "environments/proj")
    assert code == 404 and err["reason"] == "not_found" and "default" in err["message"]
    call.assert_no_secret()


async def test_bad_definitions_get_a_400_naming_the_field_and_line(api: Any) -> None:
    call = Seen(api)
    code, err = await call("POST", "environments",
                           {"name": "bad", "env": f"OK=1\nKEY={SECRET}\nno equals sign here\n"})  # fmt: skip
    assert code == 400 and err["reason"] == "bad_environment"
    assert err["field"] == "env" and err["line"] == 3 and "line 3" in err["message"]
    code, err = await call("POST", "environments", {"name": "bad", "network": "internet"})
    assert code == 400 and err["field"] == "network" and "line" not in err
    code, err = await call("POST", "environments", {"agent": "shell"})
    assert code == 400 and err["field"] == "name"
    code, err = await call("POST", "environments", {"name": "Not Valid"})
    assert code == 400 and err["field"] == "name"
    code, err = await call("POST", "environments", "{not json")
    assert code == 400 and err["reason"] == "bad_json"
    code, err = await call("POST", "environments", '{"name": "x", "env": "A=\\ud800"}')
    assert code == 400 and err["reason"] == "bad_text"
    code, _ = await call("GET", "environments/bad")
    assert code == 404  # nothing half-made

    code, _ = await call("POST", "environments", {"name": "twice"})
    assert code == 201
    code, err = await call("POST", "environments", {"name": "twice"})
    assert code == 409 and err["reason"] == "exists"
    code, err = await call("PATCH", "environments/twice", {"name": "thrice"})
    assert code == 400 and "renamed" in err["message"]
    code, err = await call("PATCH", "environments/nowhere", {"description": "x"})
    assert code == 404
    code, err = await call("DELETE", "environments/nowhere")
    assert code == 404
    call.assert_no_secret()


async def test_builtin_and_admin_environments_are_read_only(api: Any) -> None:
    call = Seen(api)
    code, team = await call("GET", "environments/team")
    assert code == 200 and team["read_only"] is True and team["network"] == "trusted"
    assert team["env"] == "TEAM_TOKEN=********\nREGION=eu\n"
    code, err = await call("PATCH", "environments/team", {"description": "mine now"})
    assert code == 403 and err["reason"] == "read_only"
    assert "administrator's configuration" in err["message"]
    code, err = await call("DELETE", "environments/team")
    assert code == 403 and err["reason"] == "read_only"

    for name in ("default", "demo"):
        code, env = await call("GET", f"environments/{name}")
        assert code == 200 and env["read_only"] is True
        code, err = await call("DELETE", f"environments/{name}")
        assert code == 403 and err["reason"] == "read_only" and "built in" in err["message"]
        code, err = await call("PATCH", f"environments/{name}", {"network": "none"})
        assert code == 403
        code, err = await call("POST", "environments", {"name": name})
        assert code == 409
    code, listing = await call("GET", "environments")
    assert listing["environments"][0]["name"] == "default"
    call.assert_no_secret()


async def test_sessions_run_with_the_environment_and_keep_it_from_deletion(
    api: Any, session_until: Any
) -> None:
    code, _ = await api("POST", "environments", {
        "name": "shellenv", "agent": "shell", "network": "none",
        "env": "GREETING=hello-from-env\n",
    })  # fmt: skip
    assert code == 201
    code, s = await api("POST", "sessions", {"environment": "shellenv", "prompt": "echo $GREETING"})
    assert code == 201 and s["agent"] == "shell" and s["environment"] == "shellenv", s
    evs = await session_until(s["label"], lambda e: results(e) >= 1, what="the command")
    assert "hello-from-env" in "".join(str(e["payload"].get("output", "")) for e in evs)

    code, err = await api("DELETE", "environments/shellenv")
    assert code == 409 and err["reason"] == "in_use"
    assert s["label"] in err["message"] and "stop or delete" in err["message"]
    code, _ = await api("GET", "environments/shellenv")
    assert code == 200

    code, stopped = await api("POST", f"sessions/{s['label']}/stop")
    assert code == 200 and stopped["state"] == "stopped"
    code, _ = await api("DELETE", "environments/shellenv")
    assert code == 204
    code, err = await api("POST", f"sessions/{s['label']}/resume")
    assert code == 404 and "shellenv" in err["message"]


def test_the_registry_layers_admin_over_builtin_over_users(tmp_path: Path) -> None:
    store = Store(tmp_path / "catty.db")
    reg = EnvironmentRegistry(
        builtin={"default": Environment(name="default", network="full")},
        admin={"default": Environment.from_config("default", {"agent": "shell"})},
        store=store,
    )
    assert reg.get("default").agent == "shell" and reg.get("default").read_only
    reg.create("mine", {"env": "A=1\n"})
    assert [e.name for e in reg.list()] == ["default", "mine"] and not reg.get("mine").read_only
    # A record this version refuses (here: a reserved variable) is skipped by the list, explained
    # by get, and can still be deleted.
    store.put_environment("old", {"name": "old", "env": "HOME=/x\n"})
    assert [e.name for e in reg.list()] == ["default", "mine"]
    with pytest.raises(CattyError, match="delete it and create it again") as err:
        reg.get("old")
    assert err.value.status == 409
    reg.delete("old", in_use=[])
    assert store.get_environment("old") is None
    store.close()
