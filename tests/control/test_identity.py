"""A town's identity on plain folders and fakeredis: recorded by the first apply, another source
refused with a message naming both, every clone of one repository the same source, `adopt`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reconciler.control import identity
from reconciler.control.identity import Identity, TownClaimed, source_of
from reconciler.store.client import Store
from reconciler.town import TownPaths


def git(repo: Path, *args: str) -> None:
    base = ["git", "-C", str(repo), "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run([*base, *args], check=True, capture_output=True)


def repo_with_town(path: Path, remote: str | None) -> Path:
    (path / "towns" / "shared").mkdir(parents=True)
    git(path, "init", "-q")
    (path / "towns" / "shared" / "town.toml").write_text("[town]\nname = 'shared'\n")
    git(path, "add", ".")
    git(path, "commit", "-qm", "x")
    if remote:
        git(path, "remote", "add", "origin", remote)
    return path / "towns" / "shared"


def test_the_source_is_the_remote_and_the_path_inside(tmp_path: Path) -> None:
    town = repo_with_town(tmp_path / "app", "git@example.org:acme/app.git")
    src = source_of(TownPaths(town))
    assert src.shown == "git@example.org:acme/app.git:towns/shared"
    assert src.key == "git:example.org/acme/app:towns/shared"


def test_without_a_remote_the_source_is_host_and_folder(tmp_path: Path) -> None:
    src = source_of(TownPaths(tmp_path), host="box")
    assert (src.key, src.shown) == (f"path:box:{tmp_path}", f"box:{tmp_path}")


def test_a_password_in_the_remote_is_never_shown(tmp_path: Path) -> None:
    town = repo_with_town(tmp_path / "app", "https://ci:s3cret@example.org/acme/app.git")
    src = source_of(TownPaths(town))
    assert "s3cret" not in src.shown and "****" in src.shown
    assert src.key == "git:example.org/acme/app:towns/shared"


def test_first_claim_records_and_another_source_is_refused(
    fake_store: Store, tmp_path: Path
) -> None:
    first, other = tmp_path / "first", tmp_path / "srv" / "other"
    first.mkdir()
    other.mkdir(parents=True)
    Identity(TownPaths(first)).check(fake_store)  # nothing recorded yet: passes, records nothing
    assert fake_store.town_source() == {}
    assert Identity(TownPaths(first)).claim(fake_store) is False
    recorded = fake_store.town_source()
    assert recorded["source"].endswith(f":{first}")

    with pytest.raises(TownClaimed) as e:
        Identity(TownPaths(other)).check(fake_store)
    assert e.value.message == (
        f"town '{fake_store.town}' on fake:// is managed from {recorded['source']}; this folder "
        f"is {other} (use another [town] name, or tt apply --adopt to move it here)"
    )
    with pytest.raises(TownClaimed):
        Identity(TownPaths(other)).claim(fake_store)
    assert fake_store.town_source() == recorded  # refused: nothing changed


def test_a_fresh_clone_is_the_same_source(fake_store: Store, tmp_path: Path) -> None:
    town = repo_with_town(tmp_path / "dev" / "app", "git@example.org:acme/app.git")
    Identity(TownPaths(town)).claim(fake_store)
    clone = tmp_path / "ci" / "app"
    subprocess.run(["git", "clone", "-q", str(tmp_path / "dev" / "app"), str(clone)], check=True)
    # The clone's origin is the first checkout; the CI system clones from the server instead.
    git(clone, "remote", "set-url", "origin", "https://example.org/acme/app.git")
    ci = Identity(TownPaths(clone / "towns" / "shared"))
    ci.check(fake_store)
    assert ci.claim(fake_store) is False
    assert fake_store.town_source()[ci.folder]  # noted: its next commands run no git


def test_a_known_folder_runs_no_git(
    fake_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Identity(TownPaths(tmp_path)).claim(fake_store)

    def no_git(folder: Path) -> None:
        raise AssertionError("git ran for a folder already known")

    monkeypatch.setattr(identity.git, "checkout_of", no_git)
    Identity(TownPaths(tmp_path)).check(fake_store)
    assert Identity(TownPaths(tmp_path)).claim(fake_store) is False


def test_adopt_moves_the_town_and_says_so(fake_store: Store, tmp_path: Path) -> None:
    first, other = tmp_path / "first", tmp_path / "other"
    first.mkdir()
    other.mkdir()
    Identity(TownPaths(first)).claim(fake_store)
    assert Identity(TownPaths(other)).claim(fake_store, adopt=True) is True
    record = fake_store.town_source()
    assert record["source"].endswith(f":{other}")
    assert not any(str(first) in k for k in record)  # the old folder is no longer known
    adopted = [f for _, f in fake_store.events_since("-") if f["type"] == "town.adopted"]
    assert len(adopted) == 1 and adopted[0]["from"].endswith(f":{first}")
    with pytest.raises(TownClaimed):
        Identity(TownPaths(first)).check(fake_store)
    # Adopting again from the same folder moves nothing.
    assert Identity(TownPaths(other)).claim(fake_store, adopt=True) is False
