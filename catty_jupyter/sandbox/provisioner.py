"""Kernel provisioners that launch the agent runtime: `catty-sandbox` (bubblewrap) and
`catty-unsandboxed` (for admins who explicitly choose to run without a sandbox)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.local_provisioner import LocalProvisioner

from .bwrap import SandboxSpec, build_command, find_bwrap

SPEC_ARGUMENT = "catty_sandbox"
"""The `start_kernel` keyword that carries a session's SandboxSpec (as JSON) to the provisioner."""


class CattySandboxProvisioner(LocalProvisioner):  # type: ignore[misc]
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


class UnsandboxedProvisioner(LocalProvisioner):  # type: ignore[misc]
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
