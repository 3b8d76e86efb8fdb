"""Run the git CLI with settings that make it safe to point at a user's repository."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

# What `git rev-parse --local-env-vars` prints: inherited from a parent git (a hook, an editor
# started by git), any of these would silently point our commands at another repository, index
# or object store.
_REPO_ENV_VARS = (
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_OBJECT_DIRECTORY",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_GRAFT_FILE",
    "GIT_INDEX_FILE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_REPLACE_REF_BASE",
    "GIT_PREFIX",
    "GIT_SHALLOW_FILE",
    "GIT_COMMON_DIR",
)

SAFE_CONFIG: tuple[str, ...] = (
    # A repository's hooks are code its owner did not ask us to run.
    "core.hooksPath=/dev/null",
    # An fsmonitor daemon would be started inside the user's .git and outlive us.
    "core.fsmonitor=false",
    # Housekeeping must never rewrite a user's object store behind their back.
    "gc.auto=0",
    "maintenance.auto=false",
    # Signing would prompt for a key or fail on a machine without one.
    "commit.gpgSign=false",
    "tag.gpgSign=false",
)


class GitError(Exception):
    """A git command failed; the message holds the command and git's own explanation."""

    def __init__(self, command: Sequence[str], returncode: int, stderr: str) -> None:
        self.command = list(command)
        self.returncode = returncode
        self.stderr = stderr
        detail = stderr.strip() or f"exit status {returncode}"
        super().__init__(f"`git {' '.join(self.command)}` failed: {detail}")


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment git runs with: no inherited repository redirects, never a prompt."""
    env = {k: v for k, v in os.environ.items() if k not in _REPO_ENV_VARS}
    env = {
        k: v for k, v in env.items() if not k.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))
    }
    env["GIT_TERMINAL_PROMPT"] = "0"
    # Read-only commands (status, diff) then never refresh and rewrite someone's index.
    env["GIT_OPTIONAL_LOCKS"] = "0"
    if extra:
        env.update(extra)
    return env


def run_git(
    *args: str,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    config: Sequence[str] = (),
    input: bytes | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run git with the safe settings and return the finished process; raise GitError if asked."""
    options = [part for item in (*SAFE_CONFIG, *config) for part in ("-c", item)]
    command = ["git", *options, *args]
    try:
        proc = subprocess.run(
            command,
            cwd=cwd,
            env=git_env(env),
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
            capture_output=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise GitError(args, 127, "git is not installed or not on PATH; install git") from exc
    if check and proc.returncode != 0:
        raise GitError(args, proc.returncode, os.fsdecode(proc.stderr))
    return proc


def git(
    *args: str,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    config: Sequence[str] = (),
    input: bytes | None = None,
) -> str:
    """Run git and return its stdout without the final newline; raise GitError on failure."""
    proc = run_git(*args, cwd=cwd, env=env, config=config, input=input)
    # fsdecode keeps undecodable file names round-trippable into Path objects.
    return os.fsdecode(proc.stdout).removesuffix("\n")
