"""An attempt a hard budget stops (lua/limits_lib.lua `stop_running`) keeps what a retry and
`tt usage` need: the session its model was started in (so the retry resumes it), and what its
own report, stale once its token was cleared, tells of its run (tokens so far, duration)."""

from __future__ import annotations

import json

from reconciler.store.client import Store
from reconciler.store.turn import Gate, Outcome
from tests.store.test_limits import cost, turn
from tests.store.test_transitions import rec


def test_a_budget_killed_attempt_keeps_its_session_and_what_its_stale_report_tells(
    redis_store: Store,
) -> None:
    s = redis_store
    s.set_budgets(0.1, {}, True)
    s.upsert_tasks([rec("a"), rec("b", target="ops")], 1)
    assert turn(s, None, "t1").claimed is not None
    ops = {"agent": "ops", "gate": Gate("claude", "ops"), "targets": ("ops",)}
    assert turn(s, None, "t2", **ops).claimed is not None  # type: ignore[arg-type]
    s.client.sadd(s.keys.agents, "dev", "ops")
    s.note_model("ops", 4242, "1", "b sess-1", "/town/ops")
    turn(s, Outcome("a", "t1", True, "ok", detail=cost("a", 1, 0.2)), "")  # the budget: killed
    # ops's model is stopped; its report comes after, stale, with what its run showed.
    used = {"input": 8, "output": 180, "cache_read": 8000, "cache_write": None}
    detail = {
        "attempt": 1,
        "agent": "ops",
        "exit_class": "killed",
        "session_id": "sess-1",
        "tokens": used,
        "cost_usd": None,
        "duration_s": 3.5,
    }
    late = Outcome("b", "t2", False, "stopped", detail=json.dumps(detail))
    assert turn(s, late, "", **ops).reported == "stale"  # type: ignore[arg-type]
    [killed] = s.attempt_history("b")
    assert (killed["exit_class"], killed["reason"]) == ("killed", "budget")
    # noted when its model started: the retry resumes it, in that folder only
    assert (killed["session_id"], killed["workdir"]) == ("sess-1", "/town/ops")
    assert killed["tokens"] == used and killed["duration_s"] == 3.5 and killed["cost_usd"] is None
