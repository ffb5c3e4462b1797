"""`tt mcp`: the town as tools of an MCP server (the official `mcp` SDK), so another agent (Claude
Code, Codex) can run it. Each tool is one operation of `control.townops`, returning the CLI's
`-o json` shape; an engine error is a tool error carrying the CLI's message and hint.

The same rule as the CLI: `add_task` and `cancel_task` edit tasks.toml (so `git diff` shows them),
`retry_task` and `send_message` act on what runs. Imported only by `tt mcp` (the SDK takes
~0.5 s to import).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from .. import __version__
from ..control import townops
from ..control.apply import ApplyOptions
from ..control.session import Session
from ..errors import TtError

INSTRUCTIONS = """\
This server runs one Tinytown town: a folder with town.toml (the agents: AI coding CLIs) and
tasks.toml (the work and its order). A reconcile loop makes Redis and the agent processes match
the files. Start with town_status; list_tasks and get_task show the work; add_task appends a task
to tasks.toml and applies it; plan shows what apply would change; task_logs reads an attempt's
log. Task states: blocked (waits for another task), ready (queued), running, retrying, completed,
failed, cancelled, upstream_failed (waits on a failed task: retry that one), awaiting_approval,
skipped."""

READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
# May stop running work or delete tasks (cancel_task, apply's prune).
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)

# The values a model may pass (plan/state.py's TaskState, bodies.py's Message kinds).
State = Literal[
    "blocked",
    "ready",
    "running",
    "retrying",
    "completed",
    "failed",
    "cancelled",
    "upstream_failed",
    "awaiting_approval",
    "skipped",
]
Kind = Literal["query", "info", "ack", ""]
STATES: tuple[str, ...] = get_args(State)

TaskId = Annotated[str, Field(description="A task id as tasks.toml names it, e.g. 'login-api'.")]
_F = TypeVar("_F", bound=Callable[..., Any])


def build(town_dir: str | None) -> MCPServer:
    """The server for the town at `town_dir` (None: TT_TOWN or the nearest town.toml)."""
    base = Session.find(town_dir)

    def session() -> Session:
        """A fresh session per call (files read anew, as each `tt` command does), sharing the
        server's Redis connections."""
        return base.sharing()

    server = MCPServer(
        "tinytown", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )

    def tool(annotations: ToolAnnotations) -> Callable[[_F], _F]:
        """Register `fn` as a tool; a `TtError` becomes a tool error with the CLI's words."""

        def register(fn: _F) -> _F:
            @functools.wraps(fn)
            def run(*args: Any, **kwargs: Any) -> Any:
                try:
                    return fn(*args, **kwargs)
                except TtError as e:
                    raise ToolError(e.message + (f" (hint: {e.hint})" if e.hint else "")) from e

            doc = inspect.cleandoc(fn.__doc__ or "")
            server.add_tool(run, name=fn.__name__, description=doc, annotations=annotations)
            return fn

        return register

    @tool(READ)
    def town_status() -> dict[str, Any]:
        """The town at a glance: its name, whether Redis matches the files (sync), health, every
        agent (state, current task, heartbeat) and every task (state, agent, attempts), and the
        count of tasks per state. Call this first."""
        return townops.town_status(session())

    @tool(READ)
    def list_tasks(
        state: Annotated[
            State | None,
            Field(description="Only tasks in this state (e.g. failed, running); all if omitted."),
        ] = None,
    ) -> dict[str, Any]:
        """Every task in file order: id, state, agent, attempts, result, error, upstream (the
        failed task it waits on). Returns {"tasks": [...]}."""
        rows = townops.tasks(session())
        return {"tasks": [r for r in rows if state is None or r["state"] == state]}

    @tool(READ)
    def get_task(task_id: TaskId) -> dict[str, Any]:
        """One task in full: description, state, result, error, every attempt (agent, exit
        class such as success/failed/timeout/auth/usage_limit, duration, tokens, cost), the
        last lines of its latest log (log_tail) and, with [git], its branch and merge."""
        return townops.task(session(), task_id)

    @tool(READ)
    def list_agents() -> dict[str, Any]:
        """Every agent instance: name, model, role, state (starting, idle, working, stopping,
        stopped, backoff: restarting after a crash, quarantined: crashed too often, waits for
        a restart), current task, heartbeat age in seconds, restarts, and the reason of a
        stopped one. Returns {"agents": [...]}."""
        return {"agents": townops.agents(session())}

    @tool(WRITE)
    def add_task(
        agent: Annotated[
            str, Field(description="The agent (or pool) of town.toml that should do it.")
        ],
        description: Annotated[
            str, Field(description="What to do, as the agent's prompt: specific and complete.")
        ],
        task_id: Annotated[
            str | None,
            Field(description="An id (lowercase words and dashes); made from the text if omitted."),
        ] = None,
        after: Annotated[
            str | None,
            Field(description="A task id this one waits for (it runs once that one completed)."),
        ] = None,
    ) -> dict[str, Any]:
        """Append a task to tasks.toml and apply it: the agent picks it up when free. The file
        is the desired state, so the task stays (visible in git diff). Returns its id and the
        applied plan."""
        return townops.add_task(session(), agent, description, task_id=task_id, after=after)

    @tool(WRITE)
    def retry_task(task_id: TaskId) -> dict[str, Any]:
        """Run a failed, completed or cancelled task again (a task waiting on a failed one:
        retry that one instead). Where tasks.toml says cancelled or done, it says pending
        again."""
        return townops.retry(session(), task_id)

    @tool(DESTRUCTIVE)
    def cancel_task(task_id: TaskId) -> dict[str, Any]:
        """Cancel a task: status = "cancelled" in tasks.toml, then applied. A running attempt
        is stopped; the tasks waiting for it become upstream_failed."""
        return townops.cancel(session(), task_id)

    @tool(WRITE)
    def send_message(
        to: Annotated[
            str,
            Field(description="An agent instance, or 'conductor' for the person's mailbox."),
        ],
        text: Annotated[str, Field(description="The message.")],
        urgent: Annotated[bool, Field(description="Deliver before every normal message.")] = False,
        kind: Annotated[
            Kind,
            Field(description="query (an answer is expected), info, ack, or '' for none."),
        ] = "",
    ) -> dict[str, Any]:
        """Send a message to an agent: it is kept until read and shown in the agent's next
        prompt (urgent ones first)."""
        return townops.send_message(session(), to, text, urgent=urgent, kind=kind, sender="mcp")

    @tool(READ)
    def plan() -> dict[str, Any]:
        """What apply would change to make Redis and the agents match the files: the actions
        (create, update, delete of tasks and agents) and their counts. Writes nothing (the
        same as apply with dry_run)."""
        return townops.plan(session())

    @tool(DESTRUCTIVE)
    def apply(
        dry_run: Annotated[
            bool, Field(description="Only plan: say what would change, change nothing.")
        ] = False,
        prune: Annotated[
            bool,
            Field(
                description="Delete the tasks and stop the agents that left the files "
                "(a running task's attempt is stopped). false: keep them."
            ),
        ] = True,
    ) -> dict[str, Any]:
        """Apply the files now: create and update tasks, start and restart agents, and (with
        prune) delete what left the files. Refused, changing nothing, only when it would delete
        every task or every agent the files made (emptied files); invalid files are refused
        too, with each problem's file, line and field."""
        opts = ApplyOptions(dry_run=dry_run, prune=prune, command="tt mcp apply")
        return townops.apply(session(), opts)

    @tool(READ)
    def task_logs(
        task_id: TaskId,
        lines: Annotated[
            int, Field(description="How many of the last lines to return.", ge=1, le=2000)
        ] = 100,
    ) -> dict[str, Any]:
        """The last lines of the log of a task's latest attempt (what its model printed, and
        how the attempt ended). Returns {"task", "log", "lines"}."""
        report = townops.task(session(), task_id, tail=lines)
        return {"task": task_id, "log": report["log"], "lines": report["log_tail"]}

    return server


def client_config(town: Path, client: str) -> str:
    """What registers `tt mcp` for this town in Claude Code (.mcp.json) or Codex
    (~/.codex/config.toml)."""
    command = tt_command()
    args = ["mcp", "--town", str(town)]
    if client == "codex":
        quoted = ", ".join(json.dumps(a) for a in args)
        return f"[mcp_servers.tinytown]\ncommand = {json.dumps(command)}\nargs = [{quoted}]"
    entry = {"command": command, "args": args}
    return json.dumps({"mcpServers": {"tinytown": entry}}, indent=2)


def tt_command() -> str:
    """This tt's own executable: the `tt` being run, else the one beside this Python (its venv),
    else whichever `tt` is on PATH (another program, Tinytown's Rust `tt`, may be the first)."""
    running = Path(sys.argv[0]).absolute() if sys.argv and sys.argv[0] else None
    if running is not None and running.name == "tt" and os.access(running, os.X_OK):
        return str(running)
    beside = Path(sys.executable).parent / "tt"
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("tt") or sys.argv[0]
