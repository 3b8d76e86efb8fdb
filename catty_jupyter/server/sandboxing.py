"""What a session's sandbox gets from its environment: the egress proxy and the relays into the
sandbox, the environment cache (running the setup script on a miss), overlay layers, and
resource limits. The session manager asks for a `Preparation` before it launches a runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..core.environments import Environment, Resources, format_dotenv
from ..core.errors import CattyError
from ..core.network import NetworkPolicy
from ..core.secrets import Redactor
from ..sandbox import limits
from ..sandbox.egress import EgressProxy
from ..sandbox.envcache import (
    EnvironmentCache,
    Snapshot,
    agent_version,
    base_fingerprint,
    cache_key,
    remove_tree,
)
from ..sandbox.launcher import LaunchPlan
from ..sandbox.layers import prepare_dirs, system_layers
from ..sandbox.portforward import PortForward, serve_unix_to_tcp
from ..sandbox.setup import TAIL_LINES, run_setup, setup_spec

PROXY_PORT = 3128
"""The port the egress proxy answers on inside every sandbox (each has its own loopback)."""

DEFAULT_MODEL_HOST = "api.anthropic.com"

Record = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Writes one event to the session's transcript (kind, payload)."""


class SetupFailed(CattyError):
    """The setup script failed or ran out of time; the message says which, with its log tail."""

    reason = "setup_failed"


@dataclass
class Preparation:
    """What the manager launches a runtime with."""

    forwards: list[PortForward] = field(default_factory=list)
    sandbox_env: dict[str, str] = field(default_factory=dict)
    """Non-secret variables set on the sandbox's command line (proxy settings, the label)."""
    plan: LaunchPlan = field(default_factory=LaunchPlan)
    snapshot: Snapshot | None = None
    resources: Resources | None = None
    """The limits the session was launched with (the watchdog checks against these)."""

    def to_json(self) -> dict[str, Any]:
        """What a later server needs to re-create the host side (relays, proxy, limits)."""
        return {
            "forwards": [vars(f) for f in self.forwards],
            "snapshot": self.snapshot.to_json() if self.snapshot else None,
            "enforcement": self.plan.enforcement.to_json() if self.plan.enforcement else None,
            "resources": self.resources.to_json() if self.resources else None,
        }


class SessionSandboxes:
    """Prepares and releases the host side of each session's sandbox."""

    def __init__(
        self, *, cache: EnvironmentCache, setup_timeout: float, egress_resolve: dict[str, str],
        hidden: list[Path], readable: list[Path], log: logging.Logger,
        cgroup_parent: str | None = None, keep_out: Path | None = None,
    ) -> None:  # fmt: skip
        self.cache = cache
        self.cgroup_parent = cgroup_parent
        self.keep_out = keep_out
        """The server's data directory: never under an overlay (it holds the upper layers)."""
        self.setup_timeout = setup_timeout
        self.egress_resolve = egress_resolve
        self.hidden = hidden
        self.readable = readable
        self.log = log
        self._proxies: dict[str, EgressProxy] = {}
        self._relays: dict[str, list[Any]] = {}
        self._base = base_fingerprint()

    # -- network --------------------------------------------------------------------------------

    @staticmethod
    def model_host(env: Environment) -> str:
        """The host of the model endpoint sessions in ENV talk to."""
        return urlsplit(env.env.get("ANTHROPIC_BASE_URL", "")).hostname or DEFAULT_MODEL_HOST

    def policy(self, env: Environment) -> NetworkPolicy:
        """ENV's policy; the model endpoint is always reachable (the agent cannot work without)."""
        return env.policy(always_allowed=(self.model_host(env),))

    async def start_network(
        self, session_id: str, env: Environment, runtime_dir: Path,
        on_blocked: Callable[[str], None],
    ) -> tuple[list[PortForward], dict[str, str]]:  # fmt: skip
        """Start the session's relays: a local model endpoint relayed in (any level), and the
        egress proxy behind HTTP(S)_PROXY (every level but `none`). Returns the forwards the
        runtime opens inside and the proxy variables."""
        forwards: list[PortForward] = []
        url = urlsplit(env.env.get("ANTHROPIC_BASE_URL", ""))
        if url.hostname in ("127.0.0.1", "localhost") and url.port:
            forwards.append(
                PortForward(port=url.port, socket=str(runtime_dir / f"fwd-{url.port}.sock"))
            )
        variables: dict[str, str] = {}
        policy = self.policy(env)
        if policy.uses_proxy:
            forwards.append(PortForward(port=PROXY_PORT, socket=str(runtime_dir / "egress.sock")))
        await self._serve(session_id, forwards, policy, on_blocked)
        if policy.uses_proxy:
            proxy_url = f"http://127.0.0.1:{PROXY_PORT}"
            for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
                variables[name] = proxy_url
            variables["NO_PROXY"] = variables["no_proxy"] = "localhost,127.0.0.1,::1"
        return forwards, variables

    async def restore_network(
        self, session_id: str, env: Environment | None, forwards: list[dict[str, Any]],
        on_blocked: Callable[[str], None],
    ) -> None:  # fmt: skip
        """After a server restart: listen again on the sockets a running sandbox relays to."""
        policy = self.policy(env) if env is not None else NetworkPolicy("none")
        await self._serve(session_id, [PortForward(**f) for f in forwards], policy, on_blocked)

    async def _serve(
        self, session_id: str, forwards: list[PortForward], policy: NetworkPolicy,
        on_blocked: Callable[[str], None],
    ) -> None:  # fmt: skip
        """Listen on each forward's socket: the egress proxy on the proxy port, a relay to the
        same port on the host's loopback (the local model endpoint) on any other."""
        for forward in forwards:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(forward.socket)
            if forward.port == PROXY_PORT:
                proxy = EgressProxy(forward.socket, policy, on_blocked=on_blocked,
                                    resolve=self.egress_resolve)  # fmt: skip
                await proxy.start()
                self._proxies[session_id] = proxy
            else:
                relay = await serve_unix_to_tcp(forward.socket, "127.0.0.1", forward.port)
                self._relays.setdefault(session_id, []).append(relay)

    # -- setup and the cache ----------------------------------------------------------------------

    def cache_key(self, env: Environment, agent: str) -> str:
        """The environment cache key of ENV for AGENT."""
        return cache_key(
            script=env.setup_script, variables=format_dotenv(env.env),
            network=self.policy(env).key(), base=self._base, agent=agent_version(agent),
        )  # fmt: skip

    async def snapshot(
        self, *, env: Environment, agent: str, label: str, home: Path, runtime_dir: Path,
        forwards: list[PortForward], proxy_env: dict[str, str], process_env: dict[str, str],
        record: Record,
    ) -> Snapshot:  # fmt: skip
        """The environment's snapshot: from the cache, or built now by running its setup
        script (its output streamed into the transcript as `setup_log` events)."""
        key = self.cache_key(env, agent)
        redactor = Redactor(env.secret_values)
        found = self.cache.lookup(key)
        if found is None and self.cache.building(key):
            await record("system", {"message": "waiting for another session that is running "
                                    f"the setup script of environment {env.name!r}"})  # fmt: skip

        async def build(target: Path) -> None:
            await record("system", {"message": f"running the setup script of environment "
                                    f"{env.name!r} (no cached environment yet)"})  # fmt: skip
            layers = system_layers(target, home=home, keep_out=self.keep_out)
            prepare_dirs(layers)
            spec = setup_spec(
                scratch=target / ".scratch", home=home, runtime_dir=runtime_dir,
                hidden=self.hidden, readable=self.readable,
                writable=[Path(layer.target) for layer in layers if not layer.replace_host],
                env={"CATTY_SESSION_LABEL": label, "CATTY_SETUP": "true", **proxy_env},
                hostname=f"catty-{label}",
            )  # fmt: skip

            async def output(text: str) -> None:
                await record("setup_log", {"text": redactor.text(text)})

            result = await run_setup(
                spec=spec, plan=LaunchPlan(layers=layers), script=env.setup_script,
                env=process_env, forwards=forwards, timeout=self.setup_timeout, on_output=output,
            )  # fmt: skip
            await _remove(target / ".scratch")
            tail = redactor.text("\n".join(result.tail))
            if result.exit_code is None:
                raise SetupFailed(
                    f"the setup script of environment {env.name!r} did not finish within "
                    f"{self.setup_timeout:.0f} s and was stopped (CattyExtension.setup_timeout); "
                    f"its last lines:\n{tail}"
                )
            if not result.ok:
                raise SetupFailed(
                    f"the setup script of environment {env.name!r} failed with exit status "
                    f"{result.exit_code}; its last {TAIL_LINES} lines:\n{tail}"
                )

        snapshot, built = await self.cache.get_or_build(key, build)
        if built:
            await record("system", {"message": f"environment cache built in "
                                    f"{snapshot.seconds:.1f} s ({snapshot.describe()})",
                                    "cache": "built", "built": snapshot.built})  # fmt: skip
        else:
            await record("system", {"message": f"environment cache hit ({snapshot.describe()})",
                                    "cache": "hit", "built": snapshot.built})  # fmt: skip
        return snapshot

    # -- limits ------------------------------------------------------------------------------------

    def enforcement(self, session_id: str, env: Environment) -> limits.Enforcement | None:
        """How ENV's resources are enforced for this session, or None when it sets none."""
        r = env.resources
        if r.cpus is None and r.memory is None and r.disk is None:
            return None
        enforcement = limits.prepare(session_id, r, parent=self.cgroup_parent)
        for note in enforcement.notes:
            self.log.info("catty: limits for session %s: %s", session_id, note)
        return enforcement

    # -- end -----------------------------------------------------------------------------------

    async def release(self, session_id: str, runtime: dict[str, Any] | None = None) -> None:
        """Close the session's proxy and relays; remove its cgroup."""
        proxy = self._proxies.pop(session_id, None)
        if proxy is not None:
            await proxy.close()
        for relay in self._relays.pop(session_id, []):
            relay.close()
        enforcement = (runtime or {}).get("enforcement")
        if enforcement:
            with contextlib.suppress(Exception):
                # It waits for leftovers to die: off the event loop.
                await asyncio.to_thread(limits.release, limits.Enforcement.from_json(enforcement))

    async def close(self) -> None:
        """Close every proxy and relay (the server is going away)."""
        for session_id in list(self._proxies) + list(self._relays):
            proxy = self._proxies.pop(session_id, None)
            if proxy is not None:
                await proxy.close()
            for relay in self._relays.pop(session_id, []):
                relay.close()


async def _remove(path: Path) -> None:
    await asyncio.to_thread(remove_tree, path)
