"""What `tt spawn`, `tt restart` and `tt kill` say is what happened: the same spawn again says the
agent exists and nothing changed; a restart names the old and new pid; killing the last agent
empties the roster (an emptied tasks.toml is still refused); no message shows a Python repr."""

from __future__ import annotations

import re
from pathlib import Path

from reconciler.edit.scaffold import init_town
from tests.integration.live import live_town, until


def test_spawn_restart_and_kill_say_what_happened(tmp_path: Path) -> None:
    with live_town(tmp_path / "verbs") as town:
        init_town(town.root, "verbs")
        town.name = "verbs"
        first = town.tt("spawn", "reviewer", "--model", "sim")
        assert first.returncode == 0, first.stderr
        assert first.stdout.splitlines()[0] == "spawned reviewer (sim)"
        pid = re.search(r"agent reviewer started: pid (\d+)", first.stdout)
        assert pid, first.stdout

        again = town.tt("spawn", "reviewer", "--model", "sim")
        assert again.returncode == 0, again.stderr
        assert again.stdout == "reviewer already exists (sim); nothing changed in town.toml\n"

        other = town.tt("spawn", "reviewer", "--model", "claude")
        assert other.returncode == 1
        assert "already exists in town.toml as model sim, no role, 1 replica" in other.stderr
        assert "None" not in other.stderr and "'" not in other.stderr.split(" as ")[1]

        restarted = town.tt("restart", "reviewer")
        assert restarted.returncode == 0, restarted.stderr
        line = re.fullmatch(r"restarted reviewer: pid (\d+) → (\d+)\n", restarted.stdout)
        assert line and line.group(1) == pid.group(1) and line.group(2) != pid.group(1)

        (town.root / "town.toml").write_text(
            (town.root / "town.toml")
            .read_text()
            .replace("[agents.reviewer]", "# the one who reads\n[agents.reviewer]")
        )
        killed = town.tt("kill", "reviewer")  # Tinytown's kill: stopped, kept
        assert killed.returncode == 0, killed.stderr
        assert killed.stdout.splitlines()[0] == (
            "killed reviewer: suspended in town.toml (tt resume reviewer)"
        )
        assert "agent reviewer stopped" in killed.stdout
        text = (town.root / "town.toml").read_text()
        assert "# the one who reads\n[agents.reviewer]" in text and "suspended = true" in text

        town.tt("assign", "reviewer", "Read the design")
        named = town.tt("kill", "reviewer", "--remove")
        assert named.returncode == 1
        assert "agent 'reviewer' is named by tasks in tasks.toml:" in named.stderr
        # the task no longer names it (a backlog task now)
        (town.root / "tasks.toml").write_text('[[tasks]]\nid = "later"\ndescription = "Later"\n')
        removed = town.tt("kill", "reviewer", "--remove")  # the last agent: the roster empties
        assert removed.returncode == 0, removed.stderr
        assert removed.stdout.splitlines()[0].startswith("killed reviewer: removed from town.toml")
        assert "[agents.reviewer]" not in (town.root / "town.toml").read_text()
        assert "No agents" in town.tt("list").stdout


def test_apply_wait_shows_the_claim_an_idle_agent_makes_at_once(tmp_path: Path) -> None:
    """The progress of `apply --wait` starts at the stream position taken before the apply
    wrote: an agent already waiting claims the new task within milliseconds, before the loop
    that prints the progress is up, and that claim is shown all the same."""
    with live_town(tmp_path / "prog", sim_delay=0.1) as town:
        init_town(town.root, "prog")
        town.name = "prog"
        assert town.tt("spawn", "dev", "--model", "sim").returncode == 0
        until(lambda: town.live_agents().get("dev"), 20, "dev waits for work")
        (town.root / "tasks.toml").write_text(
            '[[tasks]]\nid = "quick"\ndescription = "quick job"\nagent = "dev"\n'
        )
        run = town.tt("apply", "--wait", "--timeout", "60s")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "task.claimed task=quick agent=dev" in run.stdout, run.stdout
        assert "task.completed task=quick" in run.stdout, run.stdout
