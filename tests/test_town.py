"""Town discovery: --town, then TT_TOWN, then the nearest town.toml upward."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import TtError
from reconciler.town import find_town


@pytest.fixture
def towns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.delenv("TT_TOWN", raising=False)
    outer, inner = tmp_path / "outer", tmp_path / "outer" / "sub" / "inner"
    inner.mkdir(parents=True)
    (outer / "town.toml").write_text("[town]\nname='outer'\n")
    (inner / "town.toml").write_text("[town]\nname='inner'\n")
    return outer, inner


def test_walks_up_to_nearest(towns: tuple[Path, Path]) -> None:
    outer, inner = towns
    deep = inner / "a" / "b"
    deep.mkdir(parents=True)
    assert find_town(cwd=deep).root == inner.resolve()
    assert find_town(cwd=outer / "sub").root == outer.resolve()


def test_env_beats_walk_and_flag_beats_env(
    towns: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    outer, inner = towns
    monkeypatch.setenv("TT_TOWN", str(outer))
    assert find_town(cwd=inner).root == outer.resolve()
    assert find_town(str(inner), cwd=outer).root == inner.resolve()


def test_none_found_names_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TT_TOWN", raising=False)
    with pytest.raises(TtError) as e:
        find_town(cwd=tmp_path)
    assert "no town.toml found" in e.value.message
    assert e.value.hint is not None and "tt init" in e.value.hint


def test_env_pointing_nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TT_TOWN", str(tmp_path))
    with pytest.raises(TtError) as e:
        find_town(cwd=tmp_path)
    assert "TT_TOWN points at" in e.value.message


def test_tinytown_folder_gets_init_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TT_TOWN", raising=False)
    (tmp_path / "tinytown.toml").write_text('name = "legacy"\n')
    with pytest.raises(TtError) as e:
        find_town(cwd=tmp_path)
    assert "Tinytown" in e.value.message
    assert e.value.hint is not None and "tt init" in e.value.hint


def test_the_state_folder_a_lock_creates_is_private(tmp_path: Path) -> None:
    """DESIGN: logs and prompt files are 0600 in a 0700 `.tt/`; a lock is what creates it."""
    from reconciler.filelock import exclusive_lock

    with exclusive_lock(tmp_path / ".tt" / "edit.lock"):
        pass
    assert (tmp_path / ".tt").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / ".tt" / "edit.lock").stat().st_mode & 0o777 == 0o600


def test_an_open_state_folder_is_made_private_to_its_last_file(tmp_path: Path) -> None:
    """A `.tt/` an older tt left 0755 with 0644 logs: group and other lose every access; the
    owner's bits stay (an executable stays executable), and a symlink's target is not touched."""
    from reconciler.town import make_private_tree

    state = tmp_path / ".tt"
    (state / "logs" / "dev").mkdir(parents=True)
    log = state / "logs" / "dev" / "a-1.log"
    log.write_text("prompt")
    script = state / "hook.sh"
    script.write_text("")
    outside = tmp_path / "outside.txt"
    outside.write_text("")
    for path, mode in ((state, 0o755), (state / "logs", 0o775), (log, 0o644), (script, 0o755)):
        path.chmod(mode)
    outside.chmod(0o644)
    (state / "link").symlink_to(outside)
    make_private_tree(state)
    modes = {p.name: p.lstat().st_mode & 0o777 for p in (state, state / "logs", log, script)}
    assert modes == {".tt": 0o700, "logs": 0o700, "a-1.log": 0o600, "hook.sh": 0o700}
    assert (state / "logs" / "dev").stat().st_mode & 0o777 == 0o700
    assert outside.stat().st_mode & 0o777 == 0o644
