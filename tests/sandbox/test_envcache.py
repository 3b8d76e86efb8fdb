"""Pruning the environment cache: what no session needs goes, what one mounts stays."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from catty_jupyter.sandbox import envcache
from catty_jupyter.sandbox.envcache import EnvironmentCache, Snapshot


async def _build(cache: EnvironmentCache, key: str = "k") -> Snapshot:
    async def setup(into: Path) -> None:
        (into / "tool").write_text("installed\n")

    snapshot, built = await cache.get_or_build(key, setup)
    assert built
    return snapshot


async def _replaced(cache: EnvironmentCache) -> tuple[Snapshot, Snapshot]:
    """A build of key k, then a newer one after the first expired."""
    old = await _build(cache)
    await asyncio.sleep(cache.max_age + 0.05)
    return old, await _build(cache)


@pytest.fixture
def no_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prune as soon as something is stale, not an hour later."""
    monkeypatch.setattr(envcache, "PRUNE_GRACE", 0.0)


async def test_a_replaced_build_nobody_mounts_goes_and_the_current_one_stays(
    tmp_path: Path, no_grace: None
) -> None:
    cache = EnvironmentCache(tmp_path, max_age=0.2)
    old, new = await _replaced(cache)
    assert cache.prune(keep=set()) == [old.path]
    assert not old.path.exists() and (new.path / "tool").read_text() == "installed\n"
    assert cache.lookup("k") == new


async def test_a_build_a_session_mounts_stays_until_no_session_does(
    tmp_path: Path, no_grace: None
) -> None:
    cache = EnvironmentCache(tmp_path, max_age=0.2)
    old, _new = await _replaced(cache)
    assert cache.prune(keep={old.path}) == []
    assert (old.path / "tool").exists()
    assert cache.prune(keep=set()) == [old.path]


async def test_a_just_replaced_build_stays_for_the_grace_period(tmp_path: Path) -> None:
    # A session that looked the old build up a moment ago may not have recorded it yet.
    cache = EnvironmentCache(tmp_path, max_age=0.2)
    old, _new = await _replaced(cache)
    assert cache.prune(keep=set()) == []
    assert old.path.exists()


async def test_an_expired_build_goes_and_the_next_session_builds_again(
    tmp_path: Path, no_grace: None
) -> None:
    cache = EnvironmentCache(tmp_path, max_age=0.2)
    first = await _build(cache)
    assert cache.prune(keep=set()) == []  # still fresh
    await asyncio.sleep(0.3)
    assert cache.prune(keep=set()) == [first.path]
    assert cache.lookup("k") is None
    assert (await _build(cache)).path != first.path


async def test_without_a_max_age_the_current_build_is_kept_for_good(
    tmp_path: Path, no_grace: None
) -> None:
    cache = EnvironmentCache(tmp_path, max_age=0)
    current = await _build(cache)
    await asyncio.sleep(0.05)
    assert cache.prune(keep=set()) == [] and cache.lookup("k") == current


async def test_a_leftover_partial_build_goes_unless_its_key_is_being_built(
    tmp_path: Path,
) -> None:
    cache = EnvironmentCache(tmp_path)
    current = await _build(cache)
    partial = tmp_path / "k" / ".partial-20260101000000-abcdef"
    (partial / "usr").mkdir(parents=True)
    builder = envcache._lock_file(tmp_path / "k" / ".lock")  # as another server building k
    try:
        assert cache.prune(keep=set()) == [] and partial.exists()
    finally:
        builder.close()
    assert cache.prune(keep=set()) == [partial]
    assert cache.lookup("k") == current
