"""Property: whatever the files say, a check ends quickly, small, and with a verdict.

Mutated town.toml / tasks.toml texts (tests/spec/fuzzdocs.py) go through the loader as texts
(what `tt` edits validate) and as files (what `tt validate` and the loop read): never an
exception, never more than a few seconds an example, the process's peak RSS never more than
300 MB above where it started; always either a desired state within every bound or problems
naming file, line and JSON path. Derandomized, no example database: the same examples each run.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings

from reconciler.spec import loader
from reconciler.town import TownPaths
from tests.spec.fuzzdocs import KILLERS, assert_sound, documents

# Per example, on a 2-vCPU machine shared with other work; a check takes ~5-300 ms here.
SECONDS = 10.0
# Growth of the process's peak RSS over the whole run (ru_maxrss only ever grows).
RSS_MB = 300

FUZZ = settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,  # timed below, with a bound that holds on a loaded machine
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _killers(test: Any) -> Any:
    for doc in KILLERS:
        test = example(doc)(test)
    return test


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_the_loader_always_gives_a_bounded_state_or_located_problems(tmp_path: Path) -> None:
    start_rss = _peak_mb()
    paths = TownPaths(tmp_path)
    seen = {"valid": 0, "invalid": 0}

    @FUZZ
    @given(documents())
    @_killers
    def check(doc: tuple[str, str | None]) -> None:
        town, tasks = doc
        began = time.monotonic()
        result = loader.check_texts(town, tasks)
        assert_sound(result.desired, result.problems)

        # The same texts as files (byte for byte), as `tt validate` reads them: same verdict.
        paths.town_file.write_text(town, encoding="utf-8", errors="surrogatepass")
        if tasks is None:
            paths.tasks_file.unlink(missing_ok=True)
        else:
            paths.tasks_file.write_text(tasks, encoding="utf-8", errors="surrogatepass")
        from_files = loader.check(paths)
        assert_sound(from_files.desired, from_files.problems)
        assert from_files.valid == result.valid
        assert time.monotonic() - began < SECONDS
        seen["valid" if result.valid else "invalid"] += 1

    check()
    # The examples reach both verdicts (a fuzzer that only ever breaks the files proves little).
    assert seen["valid"] >= 10 and seen["invalid"] >= 10, seen
    assert _peak_mb() - start_rss < RSS_MB, (start_rss, _peak_mb())
