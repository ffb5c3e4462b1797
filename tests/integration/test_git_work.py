"""Work products end to end: live agents (sim and a resolving test model) in a real git
repository, with the town's own checkout of base: a chain whose code flows down the DAG, two
tasks writing the same line (redo, resolve), checks, and kill -9 of a worker mid-merge."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.live import LiveTown, alive, live_town, until
from tests.work.gitrepo import git, log_subjects

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="checks processes through /proc"),
]

RESOLVER = '''\
"""A test model: writes like sim; when the prompt lists conflicted files, keeps both sides."""
import os, re, sys, time
from reconciler.agents.sim import task_section, write_lines, writes

prompt = sys.stdin.read()
if "## Git" in prompt:
    section = prompt.split("## Git", 1)[1].split("\\n## ", 1)[0]
    for line in section.splitlines():
        if line.startswith("- "):
            path = line[2:].strip()
            marker = re.compile(r"^(<{7}|={7}|>{7})( |$)")
            with open(path) as f:
                kept = [x for x in f.read().splitlines() if not marker.match(x)]
            with open(path, "w") as f:
                f.write("\\n".join(kept) + "\\n")
    print("resolved the conflict")
else:
    # Both tasks start from the same base before either merges (else there is no conflict):
    # each checks in at the rendezvous and waits, a minute at most, for the other.
    meet = os.environ.get("TT_SIM_RENDEZVOUS")
    if meet:
        open(os.path.join(meet, os.path.basename(os.getcwd())), "w").close()
        deadline = time.monotonic() + 60
        while len(os.listdir(meet)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    write_lines(os.getcwd(), writes(task_section(prompt)))
    print("wrote it")
'''


def town_toml(name: str, git_table: str, model: str = "sim", replicas: int = 2) -> str:
    models = ""
    if model == "resolver":
        models = '[models.resolver]\ncommand = ["{python}", "resolver.py"]\n\n'
    return (
        f'[town]\nname = "{name}"\nheartbeat = "0.5s"\nlease = "2s"\nretry_backoff = "0.2s"\n'
        f'restart_backoff = "0.2s"\nresync = "5s"\n\n{git_table}\n\n{models}'
        f'[agents.dev]\nmodel = "{model}"\nreplicas = {replicas}\n'
    )


def task(tid: str, description: str, parent: str | None = None) -> str:
    after = f'parent = "{parent}"\n' if parent else ""
    return f'[[tasks]]\nid = "{tid}"\nagent = "dev"\n{after}description = "{description}"\n\n'


@pytest.fixture
def town(tmp_path: Path) -> Iterator[LiveTown]:
    with live_town(tmp_path / "repo") as t:
        yield t


def commit_town(town: LiveTown, town_text: str, tasks_text: str) -> None:
    town.write(town_text, tasks_text)
    (town.root / ".gitignore").write_text(".tt/\n*.log\n")
    git(town.root, "init", "-q", "-b", "main")
    git(town.root, "add", "-A")
    git(town.root, "commit", "-q", "-m", "the town")


PIPELINE = (
    task("design", "Design it [sim:write:docs/design.md:use a list]")
    + task("implement", "Implement it [sim:write:src/app.txt:app v1]", parent="design")
    + task("a", "Left [sim:write:shared.txt:alpha]", parent="implement")
    + task("b", "Right [sim:write:shared.txt:beta]", parent="implement")
)


def test_a_pipeline_lands_on_base_in_order_and_a_conflict_is_redone(town: LiveTown) -> None:
    git_table = '[git]\non_conflict = "redo"\nchecks = ["test -f docs/design.md"]'
    commit_town(town, town_toml("gitpipe", git_table), PIPELINE)
    done = town.tt("apply", "--wait", "--timeout", "120s", timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    tasks = town.tasks()
    assert {t: r["state"] for t, r in tasks.items()} == dict.fromkeys(tasks, "completed")
    # code flows down the DAG: each child's merged commit descends from its parent's
    merged = {t: town.store.git_record(t)["git_merged"] for t in tasks}
    git(town.root, "merge-base", "--is-ancestor", merged["design"], merged["implement"])
    git(town.root, "merge-base", "--is-ancestor", merged["implement"], merged["a"])
    git(town.root, "merge-base", "--is-ancestor", merged["implement"], merged["b"])
    subjects = log_subjects(town.root)
    assert subjects[-1] == "the town" and len(subjects) == 5
    # the same line twice: one merged, the other reopened once, redone from base, merged
    conflicts = town.events("git.conflict")
    assert len(conflicts) == 1
    loser = conflicts[0]["task"]
    assert git(town.root, "rev-parse", f"refs/tt/gitpipe/{loser}/attempt-1")
    lines = (town.root / "shared.txt").read_text().splitlines()
    assert sorted(lines) == ["alpha", "beta"]
    # the user's checkout of main moved with it, clean; nothing of tt's shows in it
    assert git(town.root, "status", "--porcelain") == ""
    assert (town.root / "src" / "app.txt").read_text() == "app v1\n"
    # merged and clean: no worktree or task branch left
    assert list((town.paths.state_dir / "git" / "trees").iterdir()) == []
    assert git(town.root, "branch", "--list", "tt/*") == ""


def test_a_conflict_is_resolved_by_the_model_in_the_tasks_worktree(town: LiveTown) -> None:
    tasks = task("a", "Left [sim:write:shared.txt:alpha]") + task(
        "b", "Right [sim:write:shared.txt:beta]"
    )
    commit_town(town, town_toml("gitresolve", "[git]", model="resolver"), tasks)
    (town.root / "resolver.py").write_text(RESOLVER)
    git(town.root, "add", "resolver.py")
    git(town.root, "commit", "-q", "-m", "the test model")
    meet = town.root.parent / "rendezvous"
    meet.mkdir()
    town.env["TT_SIM_RENDEZVOUS"] = str(meet)
    done = town.tt("apply", "--wait", "--timeout", "120s", timeout=150)
    assert sorted(p.name for p in meet.iterdir()) == ["a", "b"]  # both ran from one base
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(town.events("git.conflict")) == 1
    assert sorted((town.root / "shared.txt").read_text().splitlines()) == ["alpha", "beta"]
    assert "<<<<<<<" not in (town.root / "shared.txt").read_text()


def test_a_failing_check_fails_the_task_and_leaves_base_unchanged(town: LiveTown) -> None:
    git_table = '[git]\nchecks = ["! grep -q bad src/app.txt"]'
    tasks = task("bad", "Break it [sim:write:src/app.txt:bad]")
    commit_town(town, town_toml("gitcheck", git_table, replicas=1), tasks)
    before = git(town.root, "rev-parse", "main")
    done = town.tt("apply", "--wait", "--timeout", "120s", timeout=150)
    assert done.returncode == 1, done.stdout + done.stderr
    rec = town.tasks()["bad"]
    assert rec["state"] == "failed"
    assert "check_failed: `! grep -q bad src/app.txt` exited 1" in rec["error"]
    assert git(town.root, "rev-parse", "main") == before
    # failed: its worktree and branch are kept (its work is not merged)
    assert (town.paths.state_dir / "git" / "trees" / "bad").is_dir()
    assert git(town.root, "rev-parse", "tt/gitcheck/bad")


def test_kill_9_of_worker_and_controller_mid_merge_merges_once_without_rerunning_the_model(
    town: LiveTown, tmp_path: Path
) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    check = (
        f"if [ ! -e {flags}/killed ]; then echo $$ > {flags}/check.pid; "
        f"touch {flags}/started; sleep 60; fi"
    )
    git_table = f'[git]\nchecks = ["{check}"]'
    commit_town(
        town, town_toml("gitkill", git_table, replicas=1), task("t", "Do [sim:write:t.txt:x]")
    )
    assert town.tt("apply").returncode == 0
    watcher = town.start_watcher("conductor")
    until(lambda: (flags / "started").exists(), 60, "the check started")
    agent = town.tasks()["t"]["assignee"]
    pid = int(town.agents()[agent]["pid"])
    before = git(town.root, "rev-parse", "main")
    town.kill_watcher(watcher)  # the controller and the worker, both mid-merge
    assert town.kill(pid)
    (flags / "killed").touch()
    again = town.start_watcher("conductor")
    until(lambda: town.tasks()["t"]["state"] == "completed", 60, "t completed after the kill")
    assert again.poll() is None
    assert len(town.events("git.committed")) == 1  # the model's work was committed once
    assert len(town.events("git.merged")) == 1
    assert log_subjects(town.root)[:2] == ["t: Do [sim:write:t.txt:x]", "the town"]
    assert git(town.root, "rev-parse", "main^") == before
    # the model ran once: the attempt after the kill merged the commit it found
    finished = [
        p for p in town.paths.logs_dir.glob(f"{agent}/t-*.log") if "(sim) finished" in p.read_text()
    ]
    assert len(finished) == 1
    orphan = int((flags / "check.pid").read_text())
    until(lambda: not alive(orphan), 10, "the orphaned check was killed")


def test_git_without_a_repository_or_base_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    with live_town(tmp_path / "norepo") as town:
        town.write(town_toml("gitnorepo", "[git]", replicas=1), task("t", "Do it"))
        done = town.tt("apply")
        assert done.returncode == 1
        assert "town.toml [git] repo:" in done.stderr
        assert "is not inside a git repository" in done.stderr
        assert town.tasks() == {} and town.agents() == {}
        git(town.root, "init", "-q", "-b", "trunk")
        git(town.root, "commit", "-q", "--allow-empty", "-m", "first")
        done = town.tt("apply")
        assert done.returncode == 1
        assert "town.toml [git] base: 'main' is not a branch of" in done.stderr
        assert "(branches: trunk)" in done.stderr
        assert town.tasks() == {}


def test_tasks_whose_touches_overlap_never_run_at_the_same_time(town: LiveTown) -> None:
    def touching(tid: str, globs: str, line: str) -> str:
        return (
            f'[[tasks]]\nid = "{tid}"\nagent = "dev"\ntouches = [{globs}]\n'
            f'description = "Edit [sim:write:src/auth/{tid}.txt:{line}] [sim:sleep:0.6]"\n\n'
        )

    tasks = (
        touching("first", '"src/auth/**"', "one")
        + touching("second", '"src/*/second.txt"', "two")  # can match src/auth/second.txt
        + touching("apart", '"docs/**"', "three")  # overlaps neither: runs beside them
    )
    commit_town(town, town_toml("gittouch", "[git]", replicas=3), tasks)
    done = town.tt("apply", "--wait", "--timeout", "120s", timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    first, second = town.attempts("first")[-1], town.attempts("second")[-1]
    assert float(second["started_at"]) >= float(first["finished_at"])  # the later one waited
    held = [e for e in town.events("task.held") if e.get("task") == "second"]
    assert held and held[0]["waits_for"] == "first" and held[0]["reason"] == "touches overlap"
    # apart ran beside first (its files are elsewhere): it did not wait for either
    apart = town.attempts("apart")[-1]
    assert float(apart["started_at"]) < float(first["finished_at"])
