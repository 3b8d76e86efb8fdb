"""A session's branch as a git bundle, with the work its agent left uncommitted committed on top.

Teleport, push, export and sync-back all start here: they need the session's work as commits
that another repository can fetch. What the bundle holds is exactly what the diff shows (see
`review`): the working files are hashed the same untrusting way, and when they differ from the
commit HEAD names, a commit that says so is made on top of it.

Like the diff, this runs in a throwaway repository of our own whose objects fall back on the
workspace's, so no hook, filter or config the agent wrote decides anything. With `record`, the
new commit is also written into the workspace: its objects as one pack, the session branch moved
to it (only if nobody moved the branch meanwhile) and, when HEAD is on that branch, the index
reset to it so the agent's `git status` stays clean. The server runs this module in a sandbox
(`python -m catty_jupyter.core.handoff …`) that can write only the workspace and the output.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .gitcmd import run_git
from .review import ISOLATED_GIT_ENV, ReviewError, ScratchRepo

UNCOMMITTED_MESSAGE = (
    "catty: work left uncommitted by the agent in session {label}\n\n"
    "The files as they were in the session's workspace when its branch was handed over, so "
    "that the branch holds exactly what the session's diff showed."
)
"""The message of the commit made of an agent's uncommitted work."""

_IDENTITY = {
    "GIT_AUTHOR_NAME": "catty",
    "GIT_AUTHOR_EMAIL": "catty@localhost",
    "GIT_COMMITTER_NAME": "catty",
    "GIT_COMMITTER_EMAIL": "catty@localhost",
}


class HandoffError(ReviewError):
    """The session's branch cannot be handed over; the message says why."""


def bundle_session(
    workspace: Path, label: str, out: Path, *, have: Sequence[str] = (), record: bool = False,
    all_refs: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Write to OUT a bundle whose `refs/heads/catty/LABEL` is the workspace as it is now.

    HAVE names commits the receiver already has (those it shares are left out). ALL_REFS adds
    every other branch and tag of the workspace (for an export). RECORD also writes the commit
    of uncommitted work into the workspace. Returns what was bundled.
    """
    workspace = Path(workspace).absolute()
    branch = f"refs/heads/catty/{label}"
    with tempfile.TemporaryDirectory(prefix="catty-handoff-") as tmp:
        scratch = ScratchRepo(workspace, Path(tmp), None)
        own = _WorkspaceGit(workspace)
        head = own.commit("HEAD")
        if head is None:
            raise HandoffError(
                f"the workspace's HEAD names no commit; {label} has nothing to hand over"
            )
        head_tree = _text(scratch.git("rev-parse", f"{head}^{{tree}}"))
        tree = scratch.snapshot(head_tree, None)
        tip = head
        if tree != head_tree:
            message = UNCOMMITTED_MESSAGE.format(label=label)
            tip = _text(scratch.git("commit-tree", "-p", head, "-m", message, tree, env=_IDENTITY))
        refs = {branch: tip}
        if all_refs:
            refs = {**own.refs(), **refs}
        for name, sha in refs.items():
            scratch.git("update-ref", name, sha)
        recorded = record and tip != head
        if recorded:
            own.take(scratch, tip, head)
            own.move_branch(branch, tip)
        wanted = [sha for sha in dict.fromkeys(have) if scratch.has_commit(sha)]
        _write_bundle(scratch, out, list(refs), [f"^{sha}" for sha in wanted], tip)
    return {"branch": branch.removeprefix("refs/heads/"), "commit": tip, "head": head,
            "uncommitted": tip != head, "recorded": recorded, "refs": refs,
            "have": wanted}  # fmt: skip


def _write_bundle(scratch: ScratchRepo, out: Path, refs: list[str], excluded: list[str],
                  tip: str) -> None:  # fmt: skip
    try:
        scratch.git("bundle", "create", "--quiet", str(out), *refs, *excluded)
    except ReviewError as exc:
        if "empty bundle" not in str(exc):
            raise
        # The receiver has it all already; send the tip alone, against its own parents.
        scratch.git("bundle", "create", "--quiet", str(out), *refs, f"{tip}^@")


def _text(raw: bytes) -> str:
    return raw.decode().strip()


class _WorkspaceGit:
    """Git commands on the workspace's own repository, with no config but its own file's
    (which SAFE_CONFIG's overrides defuse) and none of the host's."""

    def __init__(self, workspace: Path) -> None:
        self.gitdir = workspace / ".git"
        self.env = {
            **ISOLATED_GIT_ENV,
            "GIT_DIR": str(self.gitdir),
            "GIT_WORK_TREE": str(workspace),
        }
        self.workspace = workspace

    def run(self, *args: str, input: bytes | None = None, check: bool = True) -> str | None:
        proc = run_git(*args, cwd=self.workspace, env=self.env, input=input, check=False)
        if proc.returncode != 0:
            if not check:
                return None
            detail = os.fsdecode(proc.stderr).strip()[-500:] or f"exit status {proc.returncode}"
            raise HandoffError(f"git {args[0]} failed in the workspace: {detail}")
        return os.fsdecode(proc.stdout).strip()

    def commit(self, rev: str) -> str | None:
        return (
            self.run("rev-parse", "--quiet", "--verify", f"{rev}^{{commit}}", check=False) or None
        )

    def refs(self) -> dict[str, str]:
        listed = self.run("for-each-ref", "--format=%(objectname) %(refname)", "refs/heads",
                          "refs/tags") or ""  # fmt: skip
        pairs = (line.split(" ", 1) for line in listed.splitlines() if " " in line)
        return {name: sha for sha, name in pairs}

    def take(self, scratch: ScratchRepo, tip: str, head: str) -> None:
        """Copy the objects TIP adds to HEAD from the scratch store into the workspace's."""
        pack_dir = self.gitdir / "objects" / "pack"
        pack_dir.mkdir(parents=True, exist_ok=True)
        # Written as a file of the workspace's own and indexed beside it: git would otherwise
        # rename a temporary file across file systems (the scratch lives in the sandbox's /tmp).
        data = scratch.git("pack-objects", "--revs", "--stdout", "--quiet",
                           input=f"{tip}\n^{head}\n".encode())  # fmt: skip
        temp = pack_dir / f"tmp-catty-{os.getpid()}.pack"
        temp.write_bytes(data)
        try:
            name = _text(scratch.git("index-pack", str(temp))).split()[-1]
            for suffix in (".pack", ".idx"):
                os.replace(temp.with_suffix(suffix), pack_dir / f"pack-{name}{suffix}")
        finally:
            for suffix in (".pack", ".idx"):
                temp.with_suffix(suffix).unlink(missing_ok=True)

    def move_branch(self, branch: str, tip: str) -> None:
        """Point BRANCH at TIP unless someone moved it meanwhile; keep HEAD's index in step."""
        current = self.commit(branch)
        self.run("update-ref", "-m", "catty: uncommitted work committed for hand-over", branch,
                 tip, *([current] if current else ["0" * len(tip)]))  # fmt: skip
        if self.run("symbolic-ref", "--quiet", "HEAD", check=False) == branch:
            # The files already are TIP's; only the index (what git status compares) must follow.
            self.run("read-tree", tip)


def main(argv: list[str] | None = None) -> int:
    """`python -m catty_jupyter.core.handoff WORKSPACE LABEL OUT [--have SHA]… [--record]
    [--all]`: write the bundle, print what it holds as JSON."""
    parser = argparse.ArgumentParser(prog="python -m catty_jupyter.core.handoff",
                                     description=bundle_session.__doc__)  # fmt: skip
    parser.add_argument("workspace", type=Path)
    parser.add_argument("label")
    parser.add_argument("out", type=Path)
    parser.add_argument("--have", action="append", default=[], help="a commit the receiver has")
    parser.add_argument("--record", action="store_true", help="commit uncommitted work in place")
    parser.add_argument("--all", action="store_true", help="every branch and tag too")
    args = parser.parse_args(argv)
    try:
        result = bundle_session(args.workspace, args.label, args.out, have=args.have,
                                record=args.record, all_refs=args.all)  # fmt: skip
    except ReviewError as exc:
        print(exc, file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
