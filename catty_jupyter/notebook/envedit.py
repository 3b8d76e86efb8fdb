"""The environment editor widget: create or change an environment, validated by the server."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
from traitlets import Unicode

from ..client import CattyClient, ClientError
from ..core.environments import format_size
from ..core.network import NETWORK_LEVELS
from . import render
from .actions import in_background, say

_WIDE = widgets.Layout(width="100%")
_LABELS = widgets.Layout(width="11em")


def _size(value: Any) -> str:
    """A byte count as the editor shows it (`2G`, `512M`), or "" for none."""
    return format_size(int(value)) if value else ""


class EnvironmentEditor(widgets.VBox):
    """An environment's fields; *Save* sends them to the server, which validates them.

    A refused field shows the server's message beside it (a malformed `.env` line names its
    line). Secret values arrive masked and stay masked: sending the mask back keeps the value.
    """

    name = Unicode("").tag(sync=True)
    """The environment being edited ("" while a new one has no name yet)."""
    saved = Unicode("").tag(sync=True)
    """"created" or "updated" after the last successful save, else ""."""

    def __init__(self, client: CattyClient, name: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("catty-env-editor")
        self.client = client
        self.exists = False
        self.fields: dict[str, widgets.Widget] = {
            "name": widgets.Text(placeholder="my-env", layout=_WIDE),
            "description": widgets.Text(layout=_WIDE),
            "agent": widgets.Text(value="claude", layout=_WIDE),
            "network": widgets.Dropdown(options=list(NETWORK_LEVELS), value="full"),
            "allowed_domains": widgets.Textarea(
                placeholder="one per line: pypi.org, *.example.com", layout=_WIDE
            ),
            "include_defaults": widgets.Checkbox(
                description="also allow the trusted list", indent=False
            ),
            "env": widgets.Textarea(placeholder="KEY=value, one per line", layout=_WIDE),
            "secrets": widgets.Text(
                placeholder="names of secret variables, comma-separated", layout=_WIDE
            ),
            "setup_script": widgets.Textarea(
                placeholder="#!/bin/bash\npip install -e .",
                layout=widgets.Layout(width="100%", height="8em"),
            ),
            "cpus": widgets.Text(placeholder="e.g. 2", layout=_WIDE),
            "memory": widgets.Text(placeholder="e.g. 4G", layout=_WIDE),
            "disk": widgets.Text(placeholder="e.g. 10G", layout=_WIDE),
        }
        self.errors = {key: widgets.HTML() for key in self.fields}
        self.save_button = widgets.Button(description="Save", button_style="primary", icon="save")
        self.notice = widgets.HTML()
        self.save_button.on_click(lambda _: in_background(self.save, self.notice))
        rows = [
            widgets.HBox([widgets.Label(key.replace("_", " "), layout=_LABELS),
                          widgets.VBox([self.fields[key], self.errors[key]], layout=_WIDE)])
            for key in self.fields
        ]  # fmt: skip
        self.children = (widgets.HTML(f"<style>{render.STYLE}</style>"), *rows,
                         widgets.HBox([self.save_button, self.notice]))  # fmt: skip
        if name:
            self.load(name)

    def value(self, key: str) -> Any:
        """The current value of field KEY."""
        return self.fields[key].value  # type: ignore[attr-defined]

    def set_value(self, key: str, value: Any) -> None:
        """Put VALUE into field KEY."""
        self.fields[key].value = value  # type: ignore[attr-defined]

    def load(self, name: str) -> None:
        """Show environment NAME as the server has it; a name not found starts a new one."""
        try:
            env = self.client.get_environment(name)
        except ClientError as exc:
            if exc.status != 404:
                raise
            self.name = name
            self.set_value("name", name)
            say(self.notice, f"{name} does not exist yet: Save creates it")
            return
        self.exists, self.name = True, name
        resources = env.get("resources") or {}
        values = {
            "name": name, "description": env.get("description") or "",
            "agent": env.get("agent") or "", "network": env.get("network") or "full",
            "allowed_domains": "\n".join(env.get("allowed_domains") or []),
            "include_defaults": bool(env.get("include_defaults")),
            "env": env.get("env") or "", "secrets": ", ".join(env.get("secrets") or []),
            "setup_script": env.get("setup_script") or "",
            "cpus": "" if resources.get("cpus") is None else str(resources["cpus"]),
            "memory": _size(resources.get("memory")), "disk": _size(resources.get("disk")),
        }  # fmt: skip
        for key, value in values.items():
            self.set_value(key, value)
        self.fields["name"].disabled = True  # type: ignore[attr-defined]
        if env.get("read_only"):
            self.save_button.disabled = True
            say(self.notice, f"{name} is defined by the server's configuration: read-only")

    def body(self) -> dict[str, Any]:
        """The fields as the environments API takes them."""
        secrets = [s.strip() for s in str(self.value("secrets")).split(",") if s.strip()]
        domains = [d.strip() for d in str(self.value("allowed_domains")).splitlines() if d.strip()]
        return {
            "description": self.value("description"),
            "agent": self.value("agent") or None,
            "network": self.value("network"),
            "allowed_domains": domains,
            "include_defaults": bool(self.value("include_defaults")),
            "env": self.value("env"),
            "secrets": secrets,
            "setup_script": self.value("setup_script"),
            "resources": {k: (self.value(k) or None) for k in ("cpus", "memory", "disk")},
        }

    def save(self) -> None:
        """Create or update the environment; a refusal is shown next to its field."""
        for error in self.errors.values():
            error.value = ""
        name = str(self.value("name")).strip()
        body = {k: v for k, v in self.body().items() if v is not None}
        try:
            if self.exists:
                self.client.update_environment(name, **body)
                self.saved = "updated"
            else:
                self.client.create_environment(name, **body)
                self.saved, self.exists, self.name = "created", True, name
                self.fields["name"].disabled = True  # type: ignore[attr-defined]
        except ClientError as exc:
            self.saved = ""
            where = str(exc.details.get("field") or "")
            if where in self.errors:
                self.errors[where].value = f"<div class='catty-field-error'>{render.esc(exc)}</div>"
                raise ClientError(f"not saved: see {where.replace('_', ' ')}") from None
            raise
        self.load(name)
        say(self.notice, f"saved: {name} {self.saved}")
