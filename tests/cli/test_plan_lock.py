"""How long each command waits for a running apply's lock by default (`cli.cmd_apply._opts`):
a plan (it writes nothing) waits out a watcher's pass, an apply fails at once naming the holder,
an explicit --lock-timeout wins; an option the CLI passes through that `_opts` does not know is
an error, not a silently dropped setting."""

from __future__ import annotations

import pytest

from cli import cmd_apply
from reconciler.control import applylock


def test_a_plan_waits_for_a_running_apply_and_an_apply_does_not() -> None:
    assert cmd_apply.PLAN_LOCK_WAIT == applylock.PLAN_LOCK_WAIT  # the help texts say it
    assert cmd_apply._opts("tt plan", dry_run=True, lock_timeout=None).lock_timeout == 10.0
    assert cmd_apply._opts("tt plan", dry_run=True).lock_timeout == 10.0
    assert cmd_apply._opts("tt apply", dry_run=False, lock_timeout=None).lock_timeout == 0.0
    assert cmd_apply._opts("tt spawn").lock_timeout == 0.0
    assert cmd_apply._opts("tt plan", dry_run=True, lock_timeout=0.0).lock_timeout == 0.0
    assert cmd_apply._opts("tt apply", lock_timeout=3.5).lock_timeout == 3.5


def test_an_option_it_does_not_know_is_an_error() -> None:
    with pytest.raises(TypeError, match="lock_timout"):
        cmd_apply._opts("tt plan", dry_run=True, lock_timout=1.0)
