"""The review diff of a workspace, computed without trusting it, and line comments."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import nbformat
import pytest

from catty_jupyter.core.comments import (
    BadComment,
    Comment,
    compose_message,
    line_in_patch,
    parse_comment,
)
from catty_jupyter.core.review import ReviewError, compute_diff
from catty_jupyter.sandbox.bwrap import python_paths, review_command
from tests.conftest import git


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's git config out of the test repositories."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))


def repo_with(tmp_path: Path, files: dict[str, str | bytes]) -> tuple[Path, str]:
    """A repository whose one commit holds FILES; returns it and the commit."""
    repo = tmp_path / "ws"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for name, content in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    return repo, git(repo, "rev-parse", "HEAD").strip()


def state(repo: Path) -> tuple[str, dict[str, tuple[int, int]]]:
    """What a diff must leave as it was: git's status, and every file of .git with its mtime."""
    # --no-optional-locks: else `git status` itself may refresh .git/index.
    status = git(repo, "--no-optional-locks", "status", "--porcelain", "--untracked-files=all")
    files = {
        str(p.relative_to(repo)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in (repo / ".git").rglob("*")
    }
    return status, files


def by_path(diff: dict) -> dict[str, dict]:
    return {f["path"]: f for f in diff["files"]}


def test_every_kind_of_change_is_counted_and_the_workspace_is_untouched(tmp_path: Path) -> None:
    moved = "".join(f"line {i}\n" for i in range(30))
    repo, base = repo_with(tmp_path, {
        "app.py": "a\nb\nc\n", "gone.txt": "bye\n", "old_name.txt": moved,
        "image.bin": b"\x00\x01\x02", ".gitignore": "*.log\n",
    })  # fmt: skip
    (repo / "app.py").write_text("a\nB\nc\nd\n")  # modified, not staged
    (repo / "gone.txt").unlink()
    git(repo, "mv", "old_name.txt", "new_name.txt")  # staged rename
    (repo / "new.txt").write_text("x\ny\n")  # untracked
    (repo / "debug.log").write_text("ignored\n")
    (repo / "image.bin").write_bytes(b"\x00\x03")
    before = state(repo)

    diff = compute_diff(repo, base)

    assert state(repo) == before
    files = by_path(diff)
    assert sorted(files) == ["app.py", "gone.txt", "image.bin", "new.txt", "new_name.txt"]
    assert files["app.py"] | {"patch": ""} == {
        "path": "app.py", "old_path": None, "status": "modified", "added": 2, "removed": 1,
        "binary": False, "patch": "", "notebook_diff": None,
    }  # fmt: skip
    assert "-b\n+B\n c\n+d\n" in files["app.py"]["patch"]
    assert files["app.py"]["patch"].startswith("diff --git a/app.py b/app.py\n")
    assert (files["gone.txt"]["status"], files["gone.txt"]["removed"]) == ("deleted", 1)
    assert files["new_name.txt"]["status"] == "renamed"
    assert files["new_name.txt"]["old_path"] == "old_name.txt"
    assert "rename from old_name.txt" in files["new_name.txt"]["patch"]
    assert (files["new.txt"]["status"], files["new.txt"]["added"]) == ("added", 2)
    assert files["image.bin"]["binary"] is True and files["image.bin"]["patch"] == ""
    assert (files["image.bin"]["added"], files["image.bin"]["removed"]) == (0, 0)
    assert (diff["added"], diff["removed"], diff["files_changed"]) == (4, 2, 5)
    assert diff["base"] == base and diff["truncated"] is False

    stat = compute_diff(repo, base, stat_only=True)
    assert [f["patch"] for f in stat["files"]] == [""] * 5
    assert (stat["added"], stat["removed"]) == (4, 2)


def test_a_workspace_without_changes_has_an_empty_diff(tmp_path: Path) -> None:
    repo, base = repo_with(tmp_path, {"a.txt": "a\n"})
    assert compute_diff(repo, base) == {"base": base, "files": [], "added": 0, "removed": 0,
                                        "files_changed": 0, "truncated": False}  # fmt: skip


def test_notebooks_get_nbdime_diffs(tmp_path: Path) -> None:
    def notebook(source: str) -> str:
        cell = nbformat.v4.new_code_cell(source, id="cell-one")
        return nbformat.writes(nbformat.v4.new_notebook(cells=[cell]))

    repo, base = repo_with(tmp_path, {"analysis.ipynb": notebook("x = 1\nprint(x)"),
                                      "broken.ipynb": "{}"})  # fmt: skip
    (repo / "analysis.ipynb").write_text(notebook("x = 2\nprint(x)"))
    (repo / "broken.ipynb").write_text("{not json\n")
    (repo / "fresh.ipynb").write_text(notebook("print('new')"))

    files = by_path(compute_diff(repo, base))

    nbdiff = files["analysis.ipynb"]["notebook_diff"]
    assert "## modified /cells/0/source:" in nbdiff and "-  x = 1\n+  x = 2\n" in nbdiff
    assert '"id": "cell-one"' not in nbdiff  # a notebook view, not the JSON
    assert "print('new')" in files["fresh.ipynb"]["notebook_diff"]
    assert files["broken.ipynb"]["notebook_diff"] is None
    assert files["broken.ipynb"]["patch"]  # still shown as text
    assert (
        by_path(compute_diff(repo, base, stat_only=True))["analysis.ipynb"]["notebook_diff"] is None
    )


def test_the_agents_git_config_and_attributes_run_nothing(tmp_path: Path) -> None:
    repo, base = repo_with(tmp_path, {"a.txt": "a\n"})
    marker = Path(f"/tmp/PWNED-{uuid.uuid4().hex}")
    with (repo / ".git" / "config").open("a") as config:
        config.write(f'[filter "evil"]\n\tclean = "touch {marker}; cat"\n\tprocess = touch {marker}\n'
                     f'[diff "evil"]\n\ttextconv = "touch {marker}; cat"\n'
                     f'\tcommand = touch {marker}\n[core]\n\tfsmonitor = touch {marker}\n')  # fmt: skip
    (repo / ".gitattributes").write_text("* filter=evil diff=evil\n")
    (repo / "a.txt").write_text("a changed\n")
    try:
        # The trap is armed: host git adding these files runs the agent's filter.
        armed = tmp_path / "armed"
        shutil.copytree(repo, armed, symlinks=True)
        subprocess.run(["git", "add", "-A"], cwd=armed, capture_output=True,
                       env={**os.environ, "GIT_INDEX_FILE": str(tmp_path / "idx")})  # fmt: skip
        assert marker.exists()
        marker.unlink()

        diff = compute_diff(repo, base)

        assert not marker.exists()
        assert "+a changed" in by_path(diff)["a.txt"]["patch"]
    finally:
        marker.unlink(missing_ok=True)


def test_a_clean_filter_cannot_hide_a_change(tmp_path: Path) -> None:
    repo, base = repo_with(tmp_path, {"a.txt": "honest\n"})
    with (repo / ".git" / "config").open("a") as config:
        config.write(f'[filter "hide"]\n\tclean = "cat >/dev/null; cat {tmp_path}/honest"\n')
    (tmp_path / "honest").write_text("honest\n")
    (repo / ".gitattributes").write_text("a.txt filter=hide\n")
    (repo / "a.txt").write_text("backdoor\n")
    assert git(repo, "diff", "--stat", "--", "a.txt") == ""  # git itself is fooled
    assert "+backdoor" in by_path(compute_diff(repo, base))["a.txt"]["patch"]


def test_symlinks_are_shown_as_links_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("host secret\n")
    repo, base = repo_with(tmp_path, {"conf/secret.txt": "public\n", "b.txt": "b\n"})
    shutil.rmtree(repo / "conf")
    (repo / "conf").symlink_to(outside)  # a tracked directory turned into a link out
    (repo / "link.txt").symlink_to(outside / "secret.txt")

    diff = compute_diff(repo, base)

    assert "host secret" not in json.dumps(diff)
    files = by_path(diff)
    assert files["conf/secret.txt"]["status"] == "deleted"
    assert (
        f"+{outside}" in files["conf"]["patch"] and "new file mode 120000" in files["conf"]["patch"]
    )
    assert f"+{outside / 'secret.txt'}" in files["link.txt"]["patch"]


def test_odd_file_names_keep_their_own_patches(tmp_path: Path) -> None:
    names = ['quo"te.txt', "tab\there.txt", "ünï.txt", "sp ace.txt", "-dash.txt"]
    repo, base = repo_with(tmp_path, {name: "old\n" for name in names})
    for i, name in enumerate(names):
        (repo / name).write_text(f"new {i}\n")
    files = by_path(compute_diff(repo, base))
    assert sorted(files) == sorted(names)
    for i, name in enumerate(names):
        assert f"+new {i}\n" in files[name]["patch"], name


def test_big_diffs_are_cut_short_but_counted_in_full(tmp_path: Path) -> None:
    repo, base = repo_with(tmp_path, {f"f{i}.txt": "a\n" for i in range(5)})
    for i in range(5):
        (repo / f"f{i}.txt").write_text("b\n" * 200)
    diff = compute_diff(repo, base, max_patch_bytes=2000)
    assert diff["truncated"] is True
    assert (diff["added"], diff["removed"], diff["files_changed"]) == (1000, 5, 5)
    patches = [f["patch"] for f in diff["files"]]
    assert patches[0] and not patches[-1]
    assert sum(len(p) for p in patches) <= 2000


def test_paths_narrow_the_diff(tmp_path: Path) -> None:
    repo, base = repo_with(tmp_path, {"a.txt": "a\n", "b.txt": "b\n"})
    (repo / "a.txt").write_text("A\n")
    (repo / "b.txt").write_text("B\n")
    (repo / "c.txt").write_text("c\n")
    assert [f["path"] for f in compute_diff(repo, base, paths=["b.txt"])["files"]] == ["b.txt"]
    assert [f["path"] for f in compute_diff(repo, base, paths=["c.txt"])["files"]] == ["c.txt"]


def test_without_a_base_everything_is_added(tmp_path: Path) -> None:
    repo = tmp_path / "ws"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "first.txt").write_text("1\n2\n")
    diff = compute_diff(repo, None)
    assert [(f["path"], f["status"], f["added"]) for f in diff["files"]] == [
        ("first.txt", "added", 2)
    ]


def test_a_base_the_workspace_lost_is_a_clear_error(tmp_path: Path) -> None:
    repo, _base = repo_with(tmp_path, {"a.txt": "a\n"})
    with pytest.raises(ReviewError, match="missing from the workspace"):
        compute_diff(repo, "1" * 40)
    with pytest.raises(ReviewError, match="not a commit id"):
        compute_diff(repo, "--output=/tmp/x")


def test_the_module_prints_json_and_the_review_sandbox_confines_it(tmp_path: Path) -> None:
    repo, base = repo_with(tmp_path, {"a.txt": "a\n"})
    (repo / "a.txt").write_text("b\n")
    marker = Path(f"/tmp/PWNED-{uuid.uuid4().hex}")
    module = [sys.executable, "-I", "-m", "catty_jupyter.core.review", str(repo), base, "--stat"]
    hidden = [tmp_path]
    proc = subprocess.run(review_command(repo, hidden, python_paths(), module),
                          capture_output=True, text=True, env={"PATH": os.environ["PATH"]})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["files"][0]["added"] == 1
    probe = (f"touch {marker}; touch {repo}/x 2>/dev/null && echo wrote-workspace; "
             f"ls {tmp_path}; cat {tmp_path}/home/.gitconfig 2>/dev/null; true")  # fmt: skip
    proc = subprocess.run(review_command(repo, hidden, python_paths(), ["sh", "-c", probe]),
                          capture_output=True, text=True)  # fmt: skip
    try:
        assert proc.returncode == 0, proc.stderr
        assert not marker.exists()  # /tmp inside is not the host's
        assert "wrote-workspace" not in proc.stdout and not (repo / "x").exists()
        assert proc.stdout.split() == ["ws"]  # the hidden tree shows only the workspace
    finally:
        marker.unlink(missing_ok=True)


# -- comments ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "field"), [
    ({"line": 1, "text": "x"}, "path"),
    ({"path": "/etc/passwd", "line": 1, "text": "x"}, "path"),
    ({"path": "../other/a.py", "line": 1, "text": "x"}, "path"),
    ({"path": "a\nb", "line": 1, "text": "x"}, "path"),
    ({"path": "a.py", "line": "3", "text": "x"}, "line"),
    ({"path": "a.py", "line": 0, "text": "x"}, "line"),
    ({"path": "a.py", "line": True, "text": "x"}, "line"),
    ({"path": "a.py", "line": 1, "side": "left", "text": "x"}, "side"),
    ({"path": "a.py", "line": 1, "text": "  "}, "text"),
    ({"path": "a.py", "line": 1, "text": "x" * 10240}, "text"),
])  # fmt: skip
def test_bad_comments_name_their_field(body: dict, field: str) -> None:
    with pytest.raises(BadComment) as caught:
        parse_comment(body)
    assert caught.value.field == field and caught.value.status == 400


def test_a_good_comment_is_normalised() -> None:
    assert parse_comment({"path": "./src//app.py", "line": 3, "text": "why?"}) == (
        "src/app.py", 3, "new", "why?",
    )  # fmt: skip


PATCH = """diff --git a/app.py b/app.py
--- a/app.py
+++ b/app.py
@@ -10,4 +10,4 @@ def f():
 keep = 1
-    return x
+    return x + 1
 tail = 2
"""


def test_line_text_comes_from_the_hunk_that_shows_the_line() -> None:
    assert line_in_patch(PATCH, 11, "new") == "    return x + 1"
    assert line_in_patch(PATCH, 11, "old") == "    return x"
    assert line_in_patch(PATCH, 12, "new") == "tail = 2"
    assert line_in_patch(PATCH, 10, "old") == "keep = 1"
    assert line_in_patch(PATCH, 40, "new") is None and line_in_patch("", 1) is None


def test_comments_become_a_block_the_agent_acts_on() -> None:
    comments = [
        Comment(
            path="src/app.py", line=12, text="use a named constant", line_text="    return x + 1"
        ),
        Comment(path="README.md", line=1, side="old", text="keep this\nplease"),
    ]
    assert compose_message("go on", comments) == (
        "go on\n\nReview comments on your changes:\n"
        "- src/app.py line 12 (new): `    return x + 1`\n  Comment: use a named constant\n"
        "- README.md line 1 (old)\n  Comment: keep this\n  please\n"
    )
    assert compose_message("", comments).startswith("Please address these review comments.\n\n")
    assert compose_message("just text", []) == "just text"


def test_for_the_shell_agent_the_block_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    comments = [Comment(path="a.sh", line=1, text=f"`touch {marker}`\n$(touch {marker})",
                        line_text=f"$(touch {marker})")]  # fmt: skip
    for text in ("echo hello", ""):
        message = compose_message(text, comments, shell=True)
        proc = subprocess.run(["bash", "-c", 'eval "$1"', "-", message], capture_output=True,
                              text=True)  # fmt: skip
        assert proc.returncode == 0 and proc.stdout == ("hello\n" if text else "")
        assert not marker.exists()
        assert "Review comments on your changes:" in message
