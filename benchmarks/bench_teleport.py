"""Teleport of a long session, beside a plain `git fetch` of the same branch, in one run.

Prints a table and never fails the build on a number. The session: a shell session on a repo of
5,000 commits whose agent adds 100 commits, and whose transcript holds 10,000 events. Each round
teleports it into a fresh clone of the source (the clone is made outside the timing):

- teleport: `catty_jupyter.teleport.teleport` against a real server: the hand-over facts, the
  bundle (made in the sandbox), `git fetch` of the bundle, checkout, and the conversation.
- git fetch: the same branch fetched by plain git from a local clone of the workspace into a
  fresh clone of the source (the baseline), and the same followed by `git checkout`.

Goal: teleport within 1.5x of the plain fetch.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_late_attach import grow_transcript, wait_state
from catty_jupyter.client import CattyClient, ServerInfo
from catty_jupyter.teleport import teleport
from tests.servers import LiveServer

REPO_COMMITS = 5_000
BRANCH_COMMITS = 100
EVENTS = 10_000
ROUNDS = int(os.environ.get("CATTY_BENCH_ROUNDS", "5"))
GOAL = 1.5
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}  # fmt: skip


def git(cwd: Path, *args: str, input: bytes | None = None) -> str:
    """Run git as a user would."""
    return subprocess.run(["git", *args], cwd=cwd, input=input, check=True, capture_output=True,
                          env={**os.environ, **GIT_ENV}).stdout.decode()  # fmt: skip


def make_repo(path: Path, commits: int) -> None:
    """A repository of COMMITS commits, each changing one of 200 files (via fast-import)."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    stream = []
    for i in range(commits):
        body = f"line {i}\n" * 20
        stream.append(
            f"commit refs/heads/main\nmark :{i + 1}\n"
            f"committer bench <bench@localhost> {1_700_000_000 + i} +0000\n"
            f"data {len(f'commit {i}')}\ncommit {i}\n"
            + (f"from :{i}\n" if i else "")
            + f"M 100644 inline src/file{i % 200}.txt\ndata {len(body)}\n{body}\n"
        )
    git(path, "fast-import", "--quiet", input="".join(stream).encode())
    git(path, "checkout", "-q", "main")


def timed(fn: Callable[..., object], *args: object) -> float:
    """Seconds FN(*ARGS) takes."""
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def main() -> None:
    """Build the session, measure both ways, print the table."""
    tmp = Path(tempfile.mkdtemp(prefix="catty-bench-teleport-"))
    server = LiveServer(data_dir=tmp / "data", root_dir=tmp / "root")
    try:
        source = tmp / "source"
        t0 = time.perf_counter()
        make_repo(source, REPO_COMMITS)
        build_repo = time.perf_counter() - t0
        server.start()
        loop = (f"for i in $(seq {BRANCH_COMMITS}); do echo $i >> notes.txt && git add notes.txt "
                "&& git -c user.name=agent -c user.email=a@x commit -qm \"step $i\"; done; "
                "echo left uncommitted > wip.txt")  # fmt: skip
        s = server.request("POST", "sessions", {"agent": "shell", "repo": str(source),
                                                "prompt": loop})  # fmt: skip
        label, sid = s["label"], s["id"]
        wait_result(server, label)
        server.request("POST", f"sessions/{label}/stop")
        server.stop()
        grow_transcript(server.data_dir, sid, EVENTS)
        server.start()
        workspace = server.data_dir / "sessions" / sid / "workspace"
        client = CattyClient(ServerInfo(server.url, server.token))
        # The baseline's source of the branch: a plain local clone of the workspace, with the
        # uncommitted file committed the way teleport commits it (teleport records it once).
        first = fresh_clone(source, tmp / "warm")
        teleport(client, label, first)
        mirror = tmp / "mirror.git"
        git(tmp, "clone", "-q", "--bare", str(workspace), str(mirror))
        ref = f"refs/heads/catty/{label}"

        def fetch(repo: Path) -> None:
            git(repo, "fetch", "-q", str(mirror), f"{ref}:{ref}")

        def fetch_and_check_out(repo: Path) -> None:
            fetch(repo)
            git(repo, "checkout", "-q", f"catty/{label}")

        teleports, fetches, fetch_checkouts = [], [], []
        for n in range(ROUNDS):
            target = fresh_clone(source, tmp / f"t{n}")
            teleports.append(timed(teleport, client, label, target))
            plain = fresh_clone(source, tmp / f"f{n}")
            fetches.append(timed(fetch, plain))
            checked = fresh_clone(source, tmp / f"c{n}")
            fetch_checkouts.append(timed(fetch_and_check_out, checked))
            for done in (target, plain, checked):
                shutil.rmtree(done, ignore_errors=True)
        events = int(client.transcript(label, newest=True, limit=1)[-1]["seq"])
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    base = statistics.median(fetches)
    rows = [("git fetch (baseline)", base), ("git fetch + checkout", statistics.median(fetch_checkouts)),
            ("teleport", statistics.median(teleports))]  # fmt: skip
    print(
        f"\nTeleport: {REPO_COMMITS} commits in the repo, {BRANCH_COMMITS} on the branch, "
        f"{events} transcript events (repo built in {build_repo:.1f} s); median of {ROUNDS}"
    )
    print(f"{'measure':<24} {'median s':>9} {'vs git fetch':>13}")
    for name, value in rows:
        print(f"{name:<24} {value:>9.3f} {value / base:>12.2f}x")
    print(f"goal: teleport within {GOAL}x of the plain git fetch\n")


def fresh_clone(source: Path, dest: Path) -> Path:
    """A new clone of SOURCE (hard-linked, fast) to teleport into."""
    git(source.parent, "clone", "-q", str(source), str(dest))
    return dest


def wait_result(server: LiveServer, label: str, timeout: float = 300) -> None:
    """Wait for the session's first command to finish."""
    wait_state(server, label, "running", timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = server.request("GET", f"sessions/{label}/transcript?limit=1000")
        if any(e["kind"] == "result" for e in page["events"]):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the agent's commits did not finish in {timeout} s")


if __name__ == "__main__":
    main()
