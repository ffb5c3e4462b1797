"""`tt validate` on the hostile files of tests/benchmarks/bench_validate.py, as a real process
under an address-space limit: each ends with exit 1 and problems in JSON naming the file, within
the memory and time the README claims (~300 MB; seconds, here bounded loosely for a loaded CI).
Before the bounds, `replicas = 99999999999999999999` grew to 24 GB."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmarks.bench_validate import run_case

pytestmark = pytest.mark.integration

LIMIT_MB = 600  # RLIMIT_AS of the child: a MemoryError would show as a traceback, not JSON
RSS_MB = 320


@pytest.mark.parametrize(
    ("case", "where"),
    [
        ("replicas_1e20", "town.toml:6: $.agents.dev.replicas: must be at most 64"),
        ("tables_249k", "tasks.toml:1: $.tasks: is 249990 items long, at most 20000"),
        ("description_7MiB", "tasks.toml:4: $.tasks[0].description: is 7340032 characters"),
        ("inline_array_depth_1M", "tasks.toml:5: $: invalid TOML: nested too deeply"),
        ("tags_2M_ints", "tasks.toml:None: $: the file is too large to check: 2,000,005 lines"),
    ],
)
def test_tt_validate_stays_small_and_answers(tmp_path: Path, case: str, where: str) -> None:
    result = run_case(case, tmp_path, LIMIT_MB, timeout=120)
    assert result["exit"] == 1, result
    assert str(result["first_problem"]).startswith(where), result
    assert float(str(result["peak_rss_mb"])) < RSS_MB, result
