"""Finding a town: `--town DIR`, then `TT_TOWN`, then the nearest `town.toml` upward (like git).

Also the fixed file layout inside a town folder. No parsing here (that is `loader`).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .errors import TtError

TOWN_FILE = "town.toml"
TASKS_FILE = "tasks.toml"
STATE_DIR = ".tt"
TINYTOWN_FILE = "tinytown.toml"


@dataclass(frozen=True)
class TownPaths:
    """A town folder and the paths of its files and state (`.tt/`)."""

    root: Path

    @property
    def town_file(self) -> Path:
        return self.root / TOWN_FILE

    @property
    def tasks_file(self) -> Path:
        return self.root / TASKS_FILE

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def socket(self) -> Path:
        return self.state_dir / "redis.sock"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"


def make_private_tree(folder: Path) -> None:
    """Take group and other access off `folder` and everything under it (not following links):
    a `.tt/` left open by an older tt holds prompts, results and the server's data. Folders end
    0700 at most, files 0600 at most; a file vanishing meanwhile is fine."""
    for base, dirs, files in os.walk(folder):
        for name in (base, *(os.path.join(base, n) for n in (*dirs, *files))):
            try:
                st = os.lstat(name)
                if st.st_mode & 0o077 and not stat.S_ISLNK(st.st_mode):
                    os.chmod(name, stat.S_IMODE(st.st_mode) & 0o700)
            except FileNotFoundError:
                continue


def find_town(explicit: str | os.PathLike[str] | None = None, cwd: Path | None = None) -> TownPaths:
    """Resolve the town folder; raise a `TtError` with a hint when there is none."""
    if explicit is not None:
        return _checked(Path(explicit), "--town")
    env = os.environ.get("TT_TOWN")
    if env:
        return _checked(Path(env), "TT_TOWN")
    start = (cwd or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / TOWN_FILE).is_file():
            return TownPaths(folder)
    for folder in (start, *start.parents):
        if (folder / TINYTOWN_FILE).is_file():
            raise TtError(
                f"{folder / TINYTOWN_FILE} is a Tinytown (Rust) town; there is no {TOWN_FILE}",
                hint=f"run `tt init {folder}` to create town.toml (it imports the agents)",
            )
    raise TtError(
        f"no {TOWN_FILE} found in {start} or any parent folder",
        hint="run `tt init --name NAME` to create a town here, or pass --town DIR / set TT_TOWN",
    )


def _checked(folder: Path, source: str) -> TownPaths:
    folder = folder.expanduser().resolve()
    if not (folder / TOWN_FILE).is_file():
        raise TtError(
            f"{source} points at {folder}, which has no {TOWN_FILE}",
            hint=f"run `tt init {folder}` to create one",
        )
    return TownPaths(folder)
