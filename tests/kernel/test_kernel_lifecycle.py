"""The Catty kernel's life apart from its sessions: restart, interrupt, errors."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.servers import LiveServer

from .kernels import catty_kernel, label_in, plain, run


def test_a_restarted_kernel_gets_its_session_back_with_attach(
    served: LiveServer, tmp_path: Path
) -> None:
    with catty_kernel(tmp_path) as (km, kc):
        reply, outputs = run(kc, "%new --agent shell echo before-restart")
        assert reply["status"] == "ok", reply
        label = label_in(plain(outputs))

        km.restart_kernel(now=False)
        kc.wait_for_ready(timeout=60)
        assert served.request("GET", f"sessions/{label}")["state"] == "running"

        reply, outputs = run(kc, f"%attach {label}")
        assert reply["status"] == "ok", reply
        text = plain(outputs)
        assert f"attached to {label} (running (idle)" in text
        assert "before-restart" in text  # the recent transcript
        reply, outputs = run(kc, "echo after-restart")
        assert reply["status"] == "ok", reply
        assert "after-restart" in plain(outputs)
    assert served.request("GET", f"sessions/{label}")["state"] == "running"


def test_interrupt_ends_the_turn_and_the_kernel_and_session_go_on(
    served: LiveServer, tmp_path: Path
) -> None:
    with catty_kernel(tmp_path) as (km, kc):
        reply, outputs = run(kc, "%new --agent shell echo ready")
        label = label_in(plain(outputs))
        msg_id = kc.execute("sleep 30")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the command shows: it runs
            msg = kc.get_iopub_msg(timeout=30)
            if msg["parent_header"].get("msg_id") == msg_id and "sleep 30" in str(msg["content"]):
                break
        time.sleep(1)

        started = time.monotonic()
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=15)
        took = time.monotonic() - started
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert took < 8, f"the interrupted cell took {took:.1f} s to end"

        assert km.is_alive()
        assert served.request("GET", f"sessions/{label}")["state"] == "running"
        reply, outputs = run(kc, "echo still-here")
        assert reply["status"] == "ok", reply
        assert "still-here" in plain(outputs)
    events = served.request("GET", f"sessions/{label}/transcript?limit=5000")["events"]
    results = [e["payload"] for e in events if e["kind"] == "result"]
    assert results[1]["interrupted"] is True and results[1]["duration_ms"] < 15000


def test_errors_say_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No $CATTY_URL, and no running server where the kernel looks for one.
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    with catty_kernel(tmp_path) as (_, kc):
        reply, outputs = run(kc, "hello")
        assert reply["status"] == "error"
        assert reply["ename"] == "CattyError"
        assert "no running Jupyter server found" in reply["evalue"]
        assert "$CATTY_URL" in reply["evalue"]
        assert [m["msg_type"] for m in outputs] == ["error"]

        reply, outputs = run(kc, "%bogus")
        assert reply["status"] == "error" and reply["ename"] == "UsageError"
        assert "unknown command %bogus" in reply["evalue"] and "%attach LABEL" in reply["evalue"]

        reply, _ = run(kc, "%new")
        assert reply["status"] == "error" and "needs a prompt" in reply["evalue"]

        reply = kc.complete("%at", 3, reply=True, timeout=10)
        assert reply["content"]["matches"] == ["%attach"]
