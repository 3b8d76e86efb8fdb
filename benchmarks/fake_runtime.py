"""A stand-in runtime kernel for benchmarks: `python fake_runtime.py -f CONNECTION_FILE`.

It speaks just enough of the kernel protocol for the session manager (kernel_info, the
`catty.control` comm's `start` and `event` messages, shutdown) and records each event the way
the real runtime does: appended to the session's journal with catty's `Journal`, then published
on IOPub as `display_data` with the catty event mimetype. It skips everything else ipykernel
does per message (status messages, the IOPub thread, the agent), so a benchmark that feeds it
measures the server side, IOPub to WebSocket, with the runtime out of the way.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import zmq
from jupyter_client.session import Session

from catty_jupyter.core.journal import Journal
from catty_jupyter.runtime.config import CONFIG_ENV, CONTROL_COMM, EVENT_MIMETYPE, RuntimeConfig

KERNEL_INFO = {
    "status": "ok", "protocol_version": "5.3", "implementation": "catty-bench-fake-runtime",
    "implementation_version": "0", "banner": "", "help_links": [],
    "language_info": {"name": "text", "mimetype": "text/plain", "file_extension": ".txt"},
}  # fmt: skip


class FakeRuntime:
    """Answer the session manager and publish the events it is told to record."""

    def __init__(self, connection_file: Path) -> None:
        info = json.loads(connection_file.read_text())
        self.session = Session(key=info["key"].encode(), signature_scheme=info["signature_scheme"])
        config = RuntimeConfig.read(Path(os.environ[CONFIG_ENV]))
        self.journal = Journal(config.journal_path)
        self.context = zmq.Context()
        sep = "-" if info["transport"] == "ipc" else ":"

        def bind(kind: int, port_name: str) -> zmq.Socket[bytes]:
            sock = self.context.socket(kind)
            sock.bind(f"{info['transport']}://{info['ip']}{sep}{info[port_name]}")
            return sock

        self.shell = bind(zmq.ROUTER, "shell_port")
        self.control = bind(zmq.ROUTER, "control_port")
        self.stdin = bind(zmq.ROUTER, "stdin_port")
        self.hb = bind(zmq.REP, "hb_port")
        self.iopub = bind(zmq.PUB, "iopub_port")
        self.running = True

    def serve(self) -> None:
        """Handle messages until a shutdown request."""
        poller = zmq.Poller()
        for sock in (self.shell, self.control, self.hb):
            poller.register(sock, zmq.POLLIN)
        while self.running:
            for sock, _ in poller.poll():
                if sock is self.hb:
                    self.hb.send(self.hb.recv())
                    continue
                idents, parts = self.session.feed_identities(sock.recv_multipart())
                self.handle(sock, idents, self.session.deserialize(parts))
        self.context.destroy(linger=1000)

    def handle(self, sock: zmq.Socket[bytes], idents: list[bytes], msg: dict[str, Any]) -> None:
        """Answer one shell or control message."""
        kind = msg["header"]["msg_type"]
        if kind == "kernel_info_request":
            # jupyter_client's wait_for_ready takes a kernel as ready only once IOPub carries
            # something after the reply; ipykernel's busy/idle status is that something.
            self.session.send(self.iopub, "status", {"execution_state": "busy"}, parent=msg)
            self.session.send(sock, "kernel_info_reply", KERNEL_INFO, parent=msg, ident=idents)
            self.session.send(self.iopub, "status", {"execution_state": "idle"}, parent=msg)
        elif kind in ("shutdown_request", "interrupt_request"):
            reply = kind.replace("request", "reply")
            self.session.send(sock, reply, {"status": "ok", **msg["content"]}, msg, idents)
            self.running = kind == "interrupt_request"
        elif kind == "comm_msg" and msg["content"].get("comm_id") == CONTROL_COMM:
            data = msg["content"].get("data") or {}
            if data.get("type") == "start":
                self.emit("status", {"activity": "idle", "ready": True, "startup_ms": 0}, msg)
            elif data.get("type") == "event":
                self.emit(str(data.get("kind")), dict(data.get("payload") or {}), msg)

    def emit(self, kind: str, payload: dict[str, Any], parent: dict[str, Any]) -> None:
        """Journal an event, then publish it, as the real runtime does."""
        event = self.journal.append(kind, payload)
        content = {"data": {EVENT_MIMETYPE: event.to_json(), "text/plain": f"[{kind}]"},
                   "metadata": {}, "transient": {}}  # fmt: skip
        self.session.send(self.iopub, "display_data", content, parent=parent)


if __name__ == "__main__":
    FakeRuntime(Path(sys.argv[sys.argv.index("-f") + 1])).serve()
