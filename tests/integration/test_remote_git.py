"""Work products across hosts (issue 14, point 4): a bare remote, the controller's clone (the
town's folder, base checked out there) and a node's own clone (`tt node run --workspace DIR`,
without the town's files). Real Valkey, git and sim agents.

- tasks done on the node: each branch starts from base as the remote has it (code flows down the
  DAG: the dependent sees its parent's file), is pushed to `[git] push`, fetched and merged by
  the leader's merge queue (its checks run there) into main, which is pushed back; nothing lost;
  the pushed branches are gone from the remote once merged, the node's worktrees once clean;
- custody on the node: a task whose check fails keeps its worktree and commit in the node's
  clone; `tt worktrees` there and on the leader names node far; `tt gc` on the node keeps it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.integration.live import TT, alive, cwd_of, live_town, until
from tests.work.gitrepo import git

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="checks processes through /proc"),
]

TOWN = """[town]
name = "far-git"
heartbeat = "0.5s"
lease = "2s"
retry_backoff = "0.2s"
restart_backoff = "0.2s"
resync = "5s"

[git]
base = "main"
push = "origin"
checks = ["test ! -f bad.txt"]

[agents.dev]
model = "sim"
node = "far"
"""


def task(tid: str, description: str, **more: str | int) -> str:
    lines = [f'id = "{tid}"', 'agent = "dev"', f'description = "{description}"']
    lines += [f"{k} = {v}" if isinstance(v, int) else f'{k} = "{v}"' for k, v in more.items()]
    return "[[tasks]]\n" + "\n".join(lines) + "\n\n"


TASKS = (
    task("design", "Design it [sim:write:docs/design.md:use a list]")
    + task("build", "Build it [sim:write:src/app.txt:app v1]", parent="design")
    + task("docs", "Document it [sim:write:README.md:how to use it]")
    + task("bad", "Break the check [sim:write:bad.txt:oops]", retries=0)
)


def test_tasks_done_on_a_nodes_own_clone_are_pushed_fetched_and_merged_by_the_leader(
    tmp_path: Path,
) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    with live_town(tmp_path / "repo", sim_delay=0.05) as town:
        town.write(TOWN, TASKS)
        (town.root / ".gitignore").write_text(".tt/\n*.log\n")
        git(town.root, "init", "-q", "-b", "main")
        git(town.root, "add", "-A")
        git(town.root, "commit", "-q", "-m", "the town")
        git(town.root, "remote", "add", "origin", str(remote))
        git(town.root, "push", "-q", "origin", "main")
        far = tmp_path / "far-clone"
        git(tmp_path, "clone", "-q", str(remote), str(far))

        town.start_watcher("conductor")
        until(lambda: "design" in town.tasks(), 30, "the town applied")
        url = f"unix://{town.paths.socket}"
        node_env = {**town.env, "TT_SIM_DELAY": "0.05"}
        args = ["--name", "far", "--lease", "2", "--redis", url, "--town-name", "far-git"]
        with open(tmp_path / "far-node.log", "wb") as log:
            node = subprocess.Popen(
                [*TT, "node", "run", *args, "--workspace", str(far)],
                cwd=tmp_path,
                env=node_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            done = {"design", "build", "docs"}

            def finished() -> bool:
                states = {t: r.get("state") for t, r in town.tasks().items()}
                return all(states[t] == "completed" for t in done) and states["bad"] == "failed"

            until(finished, 90, "three tasks merged and the bad one failed")

            # Every attempt ran on the node; the leader merged each into main, pushed back.
            for t in (*done, "bad"):
                assert {a.get("node") for a in town.attempts(t)} == {"far"}, town.attempts(t)
            main = git(town.root, "rev-parse", "main")
            assert git(town.root, "ls-remote", "origin", "refs/heads/main").split()[0] == main
            subjects = git(town.root, "log", "--format=%s", "main").splitlines()
            for t in done:
                assert sum(s.startswith(f"{t}: ") for s in subjects) == 1, subjects
            assert not any(s.startswith("bad: ") for s in subjects)
            files = {
                p: git(town.root, "show", f"main:{p}")
                for p in ("docs/design.md", "src/app.txt", "README.md")
            }
            assert files == {
                "docs/design.md": "use a list",
                "src/app.txt": "app v1",
                "README.md": "how to use it",
            }
            # build started from base as the remote had it once design was merged: its branch
            # held design's file (code flows down the DAG across hosts).
            build_merged = town.tasks()["build"]["git_merged"]
            assert git(town.root, "show", f"{build_merged}:docs/design.md") == "use a list"
            pushed = [e for e in town.events("git.pushed") if e["ref"].startswith("tt/")]
            assert {e["task"] for e in pushed} >= {*done, "bad"}
            assert (tmp_path / "repo" / "src" / "app.txt").read_text() == "app v1\n"

            # Merged: the pushed branches left the remote; the node's worktrees are gone.
            left = git(town.root, "ls-remote", "origin", "refs/heads/tt/*").splitlines()
            assert [line.split()[1] for line in left] == ["refs/heads/tt/far-git/bad"]
            trees = far / ".tt" / "git" / "trees"
            until(lambda: sorted(p.name for p in trees.iterdir()) == ["bad"], 10, "trees")

            # Custody on the node: the failed task's worktree and commit stay there, named.
            env = {**town.env, "TT_TOWN_NAME": "far-git", "TT_REDIS_URL": url}
            there = _tt(env, far, "worktrees", "-o", "json", "--town", str(far))
            rows = {r["task"]: r for r in there["worktrees"]}
            assert rows["bad"]["node"] == "far" and rows["bad"]["state"] == "failed"
            assert rows["bad"]["verdict"] == "keep" and rows["bad"]["ahead"] == 1
            assert (trees / "bad" / "bad.txt").read_text() == "oops\n"
            gc = subprocess.run(
                [*TT, "gc", "--town", str(far)], cwd=far, env=env, capture_output=True, text=True
            )
            assert gc.returncode == 0, gc.stderr
            assert (trees / "bad" / "bad.txt").is_file()
            # ... and the leader, which fetched it to run the checks (into a ref of tt's own,
            # never a branch), shows where it was done.
            here = _tt(town.env, town.root, "worktrees", "-o", "json", "--town", str(town.root))
            mine = {r["task"]: r for r in here["worktrees"]}
            assert mine["bad"]["node"] == "far" and mine["bad"]["branch"] is None
            assert mine["bad"]["kept_refs"] == ["refs/tt/far-git/bad/fetched"]
            assert set(mine) == {"bad"}  # merged tasks' fetched copies were dropped
        finally:
            node.send_signal(signal.SIGTERM)
            code = node.wait(timeout=30)
            for rec in town.agents().values():
                for key in ("pid", "model_pid"):
                    pid = int(rec[key]) if rec.get(key, "").isdigit() else 0
                    if pid and alive(pid) and cwd_of(pid) in (str(far), None):
                        os.kill(pid, signal.SIGKILL)
        assert code == 0, (tmp_path / "far-node.log").read_text()


def _tt(env: dict[str, str], cwd: Path, *args: str) -> dict[str, object]:
    done = subprocess.run([*TT, *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert isinstance(found, dict)
    return found
