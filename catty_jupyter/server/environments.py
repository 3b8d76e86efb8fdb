"""The environments sessions start in: built in, from the administrator's config, or the users'."""

from __future__ import annotations

import builtins
from typing import Any

from ..core.environments import BadEnvironment, Environment, parse_dotenv
from ..core.errors import CattyError, Conflict, NotFound
from ..core.store import Store


class ReadOnly(CattyError):
    """An environment the API may not change: built in, or from the server's configuration."""

    status = 403
    reason = "read_only"


class InUse(Conflict):
    """An environment that live sessions run in."""

    reason = "in_use"


class EnvironmentRegistry:
    """Every environment by name: the administrator's, then the built-in ones, then the users'.

    Built-in (`default`, `demo`) and administrator-defined environments are read-only; users'
    environments live in the store, secret values included, and leave it masked.
    """

    def __init__(
        self, builtin: dict[str, Environment], admin: dict[str, Environment],
        store: Store | None = None,
    ) -> None:  # fmt: skip
        self.builtin = {n: e.with_changes(read_only=True) for n, e in builtin.items()}
        self.admin = {n: e.with_changes(read_only=True) for n, e in admin.items()}
        self._store = store

    def bind(self, store: Store) -> None:
        """Keep users' environments in STORE (the session manager's)."""
        self._store = store

    @property
    def store(self) -> Store:
        """Where users' environments are kept."""
        if self._store is None:
            raise RuntimeError("the environment registry has no store yet; bind() one first")
        return self._store

    def get(self, name: str) -> Environment:
        """The environment called NAME, or NotFound naming the known ones."""
        found = self.find(name)
        if found is None:
            known = ", ".join(e.name for e in self.list())
            raise NotFound(f"no environment {name!r}; known environments: {known}")
        return found

    def find(self, name: str) -> Environment | None:
        """The environment called NAME, or None."""
        fixed = self.admin.get(name) or self.builtin.get(name)
        if fixed is not None:
            return fixed
        record = self.store.get_environment(name)
        return None if record is None else self._load(name, record)

    def list(self) -> builtins.list[Environment]:
        """Every environment, `default` first, then by name."""
        envs = {**self.builtin, **self.admin}
        for record in self.store.list_environments():
            name = str(record.get("name"))
            if name not in envs:
                try:
                    envs[name] = self._load(name, record)
                except CattyError:
                    continue  # the rest of the list still shows; `get` says what is wrong
        return sorted(envs.values(), key=lambda e: (e.name != "default", e.name))

    def create(self, name: str, data: dict[str, Any]) -> Environment:
        """Validate and store a new environment; Conflict when the name is taken."""
        if name in self.admin or name in self.builtin or self.store.get_environment(name):
            raise Conflict(f"an environment called {name!r} already exists; pick another "
                           "name, or change that one", reason="exists")  # fmt: skip
        env = Environment.from_json(name, data)
        self.store.put_environment(name, env.to_record())
        return env

    def update(self, name: str, data: dict[str, Any]) -> Environment:
        """Change the fields DATA gives (the rest stay); read-only environments are refused."""
        self._check_writable(name)
        previous = self.get(name)
        if "name" in data and data["name"] != name:
            raise BadEnvironment("an environment cannot be renamed; create one with the new "
                                 "name and delete this one", field="name")  # fmt: skip
        if "env" in data and "secrets" not in data and isinstance(data["env"], str):
            # A variable that is removed stops being secret, rather than refusing the edit.
            kept = set(parse_dotenv(data["env"]))
            data = {**data, "secrets": sorted(previous.secrets & kept)}
        env = Environment.from_json(name, data, previous=previous)
        self.store.put_environment(name, env.to_record())
        return env

    def delete(self, name: str, in_use: builtins.list[str]) -> None:
        """Remove a user's environment, unless it is read-only or live sessions IN_USE run in it."""
        self._check_writable(name)
        if self.store.get_environment(name) is None:
            self.get(name)  # NotFound, naming the known ones
        if in_use:
            shown = ", ".join(in_use[:5]) + (
                f" and {len(in_use) - 5} more" if len(in_use) > 5 else ""
            )
            raise InUse(f"environment {name!r} is used by sessions {shown}; stop or delete "
                        "them first")  # fmt: skip
        self.store.delete_environment(name)

    def _check_writable(self, name: str) -> None:
        """ReadOnly for built-in and administrator-defined environments."""
        if name in self.admin:
            raise ReadOnly(f"environment {name!r} is defined by the administrator's "
                           "configuration (CattyExtension.environments) and cannot be changed "
                           "here; create your own with another name")  # fmt: skip
        if name in self.builtin:
            raise ReadOnly(f"environment {name!r} is built in and cannot be changed here; "
                           "create your own with another name (an administrator can "
                           "redefine it in CattyExtension.environments)")  # fmt: skip

    def _load(self, name: str, record: dict[str, Any]) -> Environment:
        """An environment from its stored record (validated again, its times kept)."""
        try:
            env = Environment.from_json(name, record)
        except BadEnvironment as exc:
            # Stored by an older version that allowed what this one does not.
            raise CattyError(f"environment {name!r} is stored in a form this version refuses "
                             f"({exc.message}); delete it and create it again",
                             status=409, reason="unreadable_environment") from None  # fmt: skip
        return env.with_changes(updated=float(record.get("updated") or 0.0))
