"""Kernel provisioners that launch the agent runtime: `catty-sandbox` (bubblewrap) and
`catty-unsandboxed` (for admins who explicitly choose to run without a sandbox)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
from pathlib import Path
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.local_provisioner import LocalProvisioner

from .bwrap import SandboxSpec, build_command, find_bwrap
from .launcher import LaunchPlan

SPEC_ARGUMENT = "catty_sandbox"
"""The `start_kernel` keyword that carries a session's SandboxSpec (as JSON) to the provisioner."""


class ReattachableProvisioner(LocalProvisioner):  # type: ignore[misc]
    """A local provisioner that can take over a runtime another server process launched.

    `LocalProvisioner` watches its kernel through the `Popen` object it started with, so after
    `load_provisioner_info` in a new server it has none and believes the kernel dead. Here a
    re-attached provisioner watches and signals the saved pid instead.
    """

    @property
    def has_process(self) -> bool:
        """True while we started the kernel or hold the pid of one we re-attached to."""
        return self.process is not None or self.pid is not None

    @property
    def reattached(self) -> bool:
        """True when this provisioner took over a kernel it did not launch."""
        return self.process is None and self.pid is not None

    async def poll(self) -> int | None:
        """None while the kernel lives; its exit status (0 when unknown) once it has ended."""
        if not self.reattached:
            return await super().poll()  # type: ignore[no-any-return]
        return None if runtime_alive(self.pid) else 0

    async def wait(self) -> int | None:
        """Wait for the kernel to end."""
        if not self.reattached:
            return await super().wait()  # type: ignore[no-any-return]
        while runtime_alive(self.pid):
            await asyncio.sleep(0.1)
        self.pid = None
        return 0

    async def send_signal(self, signum: int) -> None:
        """Signal the kernel's process group (or process) by pid when re-attached."""
        if not self.reattached:
            await super().send_signal(signum)
            return
        pid = int(self.pid or 0)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.pgid:
                os.killpg(self.pgid, signum)
            else:
                os.kill(pid, signum)

    async def kill(self, restart: bool = False) -> None:
        """SIGKILL the kernel."""
        if self.reattached:
            await self.send_signal(signal.SIGKILL)
        else:
            await super().kill(restart=restart)

    async def terminate(self, restart: bool = False) -> None:
        """SIGTERM the kernel."""
        if self.reattached:
            await self.send_signal(signal.SIGTERM)
        else:
            await super().terminate(restart=restart)


def runtime_alive(pid: int | None) -> bool:
    """True when PID is a live (not zombie) bwrap or catty runtime process.

    The command line is checked because after a reboot or a long while the pid may belong to
    something else entirely.
    """
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X") and (b"bwrap" in cmdline or b"catty_jupyter.runtime" in cmdline)


class CattySandboxProvisioner(ReattachableProvisioner):
    """Launch the runtime kernel inside bubblewrap, confined by the session's SandboxSpec."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sandbox_pid: int | None = None

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        """Wrap the kernel's argv in bwrap and start it detached from the server."""
        raw = kwargs.pop(SPEC_ARGUMENT, None)
        if raw is None:
            raise RuntimeError(
                "the catty-sandbox provisioner only launches catty session runtimes "
                f"(start_kernel was called without {SPEC_ARGUMENT}=)"
            )
        spec = SandboxSpec.from_json(raw)
        status_read, status_write = os.pipe()
        # bwrap reports the pid of the sandbox's init on this pipe; killing that pid ends the
        # whole PID namespace, which signalling bwrap itself would not.
        sandboxed_cmd = build_command(spec, cmd, bwrap=find_bwrap())
        sandboxed_cmd[1:1] = ["--json-status-fd", str(status_write)]
        if spec.plan:
            # Layers and limits are set up by a launcher that then becomes bwrap (same pid).
            sandboxed_cmd = LaunchPlan.from_json(spec.plan).command(sandboxed_cmd)
        kwargs["pass_fds"] = (status_write,)
        kwargs["cwd"] = str(spec.workspace)
        try:
            info = await super().launch_kernel(sandboxed_cmd, **kwargs)
        finally:
            os.close(status_write)
        try:
            self.sandbox_pid = _read_child_pid(status_read)
        finally:
            os.close(status_read)
        return info  # type: ignore[no-any-return]

    async def send_signal(self, signum: int) -> None:
        """Deliver signals meant to end the kernel to the sandbox's init, ending everything."""
        if signum in (signal.SIGKILL, signal.SIGTERM) and self.sandbox_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.sandbox_pid, signal.SIGKILL)
        await super().send_signal(signum)

    async def get_provisioner_info(self) -> dict[str, Any]:
        """Persist the sandbox's init pid beside the usual process information."""
        info: dict[str, Any] = await super().get_provisioner_info()
        info["sandbox_pid"] = self.sandbox_pid
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        """Restore what `get_provisioner_info` saved."""
        await super().load_provisioner_info(provisioner_info)
        self.sandbox_pid = provisioner_info.get("sandbox_pid")


class UnsandboxedProvisioner(ReattachableProvisioner):
    """Launch the runtime kernel with no confinement; only when an administrator chose it."""

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        """Start the kernel in the session's workspace with its private HOME, nothing more."""
        raw = kwargs.pop(SPEC_ARGUMENT, None)
        if raw is not None:
            spec = SandboxSpec.from_json(raw)
            env = dict(kwargs.get("env") or os.environ)
            env.update(
                {
                    "HOME": str(spec.home),
                    "CATTY_REMOTE": "true",
                    "CLAUDE_CODE_REMOTE": "true",
                    "CATTY_NETWORK": "full",
                    **spec.env,
                }
            )
            kwargs["env"] = env
            kwargs["cwd"] = str(spec.workspace)
        return await super().launch_kernel(cmd, **kwargs)  # type: ignore[no-any-return]


def _read_child_pid(fd: int, timeout: float = 10.0) -> int | None:
    """Read bwrap's first JSON status line and return the sandbox init's pid."""
    buf = b""
    while b"\n" not in buf:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
    try:
        pid = json.loads(buf.split(b"\n", 1)[0]).get("child-pid")
    except ValueError:
        return None
    return int(pid) if pid else None
