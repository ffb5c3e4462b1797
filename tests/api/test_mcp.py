"""`tt mcp` (issue 12, point 6): the server driven in-process by the SDK's own client on a real
sim town (embedded Valkey, real agent processes): every tool listed with a description and an
input schema, every tool called, an engine error returned as a tool error in the CLI's words;
and the stdio server started as `tt mcp` answers a client over its pipes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_agents import Town, town  # noqa: F401

mcp = pytest.importorskip("mcp")
from mcp import Client, StdioServerParameters  # noqa: E402

from reconciler.api import mcptools  # noqa: E402

pytestmark = [pytest.mark.integration]

TOOLS = {
    "town_status",
    "list_tasks",
    "get_task",
    "list_agents",
    "add_task",
    "retry_task",
    "cancel_task",
    "send_message",
    "plan",
    "apply",
    "task_logs",
}


def write_town(t: Town) -> None:
    (t.root / "town.toml").write_text('[town]\nname = "mcp"\n\n[agents.dev]\nmodel = "sim"\n')
    (t.root / "tasks.toml").write_text(
        '# the first task\n[[tasks]]\nid = "first"\ndescription = "say hello"\nagent = "dev"\n'
    )


async def until(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    end = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def test_every_tool_on_a_live_town(town: Town, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    write_town(town)
    for key in [k for k in list(__import__("os").environ) if k.startswith("TT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("TT_SIM_DELAY", "0.05")
    server = mcptools.build(str(town.root))

    async def run() -> None:
        async with Client(server) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            assert set(tools) == TOOLS
            for t in tools.values():
                assert t.description and len(t.description) > 40, t.name
                assert t.input_schema["type"] == "object"
            assert tools["add_task"].input_schema["required"] == ["agent", "description"]
            assert tools["plan"].annotations and tools["plan"].annotations.read_only_hint

            async def call(name: str, **args: Any) -> dict[str, Any]:
                result = await c.call_tool(name, args)
                assert not result.is_error, (name, result.content)
                assert result.structured_content is not None
                return dict(result.structured_content)

            planned = await call("plan")
            made = [(a["op"], a.get("id") or a.get("name")) for a in planned["actions"]]
            assert ("create_task", "first") in made and ("create_agent", "dev") in made, made
            dry = await call("apply", dry_run=True)
            assert dry["applied"] is False and (await call("plan"))["empty"] is False
            applied = await call("apply")
            assert applied["applied"] is True
            assert (await call("plan"))["empty"] is True  # applied: nothing left to change

            async def completed(tid: str) -> bool:
                rows = (await call("list_tasks", state="completed"))["tasks"]
                return tid in {r["id"] for r in rows}

            await until(lambda: completed("first"), 30, "first completed")
            added = await call("add_task", agent="dev", description="say bye", task_id="second")
            assert added["id"] == "second" and added["saved"] is True
            assert 'id = "second"' in (town.root / "tasks.toml").read_text()
            assert "# the first task" in (town.root / "tasks.toml").read_text()  # comments kept
            await until(lambda: completed("second"), 30, "second completed")

            shown = await call("get_task", task_id="first")
            assert shown["state"] == "completed" and shown["attempts"][0]["exit_class"] == "success"
            assert shown["log_tail"]
            logs = await call("task_logs", task_id="first", lines=5)
            assert logs["log"] == shown["log"] and 0 < len(logs["lines"]) <= 5

            retried = await call("retry_task", task_id="second")
            assert retried["id"] == "second"
            await until(lambda: completed("second"), 30, "second completed again")
            status = await call("town_status")
            assert status["town"] == "mcp" and status["counts"]["completed"] == 2
            agents = (await call("list_agents"))["agents"]
            assert [a["name"] for a in agents] == ["dev"]
            sent = await call("send_message", to="dev", text="hello", urgent=True, kind="info")
            assert sent == {"to": "dev", "from": "mcp", "urgent": True, "kind": "info"}
            cancelled = await call("cancel_task", task_id="second")
            assert cancelled["id"] == "second"
            assert 'status = "cancelled"' in (town.root / "tasks.toml").read_text()

            missing = await c.call_tool("get_task", {"task_id": "nope"})
            assert missing.is_error
            assert "no task named nope" in json.dumps([x.model_dump() for x in missing.content])
            bad = await c.call_tool("send_message", {"to": "ghost", "text": "hi"})
            assert bad.is_error
            assert "no agent 'ghost' in town.toml" in bad.content[0].text  # type: ignore[union-attr]

    asyncio.run(run())


def test_tt_mcp_serves_over_stdio_and_prints_its_config(town: Town) -> None:  # noqa: F811
    write_town(town)
    config = json.loads(town.tt("mcp", "--print-config").stdout)
    entry = config["mcpServers"]["tinytown"]
    assert entry["args"] == ["mcp", "--town", str(town.root.resolve())]
    codex = town.tt("mcp", "--print-config", "--client", "codex").stdout
    assert codex.startswith("[mcp_servers.tinytown]\ncommand = ")

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "cli", "mcp", "--town", str(town.root)], env=town.env
    )

    async def run() -> None:
        async with Client(params) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            assert names == TOOLS
            result = await c.call_tool("plan", {})
            assert not result.is_error and result.structured_content is not None

    asyncio.run(run())


def test_tool_metadata_says_what_the_tools_really_do(town: Town) -> None:  # noqa: F811
    """Review of issue 12, finding 13: what a model reads is true: the tools that stop work or
    delete tasks say they are destructive, apply states its real refusal rule and takes
    dry_run/prune, states are the real ones (as enums), descriptions are dedented."""
    from reconciler.plan.state import AgentState, TaskState

    write_town(town)
    server = mcptools.build(str(town.root))

    async def run() -> None:
        async with Client(server) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
        for name, tool in tools.items():
            assert tool.annotations is not None
            destructive = bool(tool.annotations.destructive_hint)
            assert destructive is (name in ("apply", "cancel_task")), name
            assert tool.description and not any(
                line.startswith(" ") for line in tool.description.splitlines()
            ), name
        apply = tools["apply"]
        assert set(apply.input_schema["properties"]) == {"dry_run", "prune"}
        assert "every task or every agent" in (apply.description or "")
        agents = tools["list_agents"].description or ""
        assert "crashed" not in agents.replace("after a crash", "").replace("crashed too", "")
        assert all(s.value in agents for s in AgentState), agents

        def enum(tool: str, field: str) -> list[str]:
            schema = tools[tool].input_schema["properties"][field]
            options = schema.get("anyOf", [schema])
            return next(o["enum"] for o in options if "enum" in o)

        assert enum("list_tasks", "state") == [s.value for s in TaskState]
        assert enum("send_message", "kind") == ["query", "info", "ack", ""]

    asyncio.run(run())


def test_print_config_names_the_tt_being_run_not_the_first_on_path(town: Town) -> None:  # noqa: F811
    """Review of issue 12, finding 13: Tinytown's Rust `tt` may come first on PATH."""
    write_town(town)
    other = town.root.parent / "other-bin"
    other.mkdir()
    (other / "tt").write_text("#!/bin/sh\nexit 1\n")
    (other / "tt").chmod(0o755)
    path = f"{other}:{town.env.get('PATH', '')}"
    config = json.loads(town.tt("mcp", "--print-config", env={"PATH": path}).stdout)
    command = config["mcpServers"]["tinytown"]["command"]
    assert command != str(other / "tt")
    assert Path(command).name == "tt" and os.access(command, os.X_OK), command
