"""The web stack's floors in pyproject.toml keep out releases with known holes in what tt serve
uses: starlette before 0.49.1 parses a StaticFiles `Range` header in quadratic time
(CVE-2025-62727), and the dashboard is served by StaticFiles."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


def floors(extra: str) -> dict[str, tuple[int, ...]]:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"][extra]
    found = {}
    for dep in deps:
        m = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^]]*\])?>=([0-9.]+)", dep)
        if m:
            found[m.group(1).lower()] = tuple(int(p) for p in m.group(2).split("."))
    return found


def test_starlette_floor_is_past_cve_2025_62727() -> None:
    for extra in ("serve", "test"):
        assert floors(extra)["starlette"] >= (0, 49, 1), extra
