"""The verdict of a finished model run: `judge` (exit code, tails, failure patterns) over what
the CLI's own JSON said (`parsers`), with the attempt's exit class and the run's facts.

Pure: a `RunResult` and a model in, a `Verdict` out. It runs nothing and reports nothing.
"""

from __future__ import annotations

from dataclasses import replace

from ..spec.desired import ModelSpec, OutputMode
from .exitclass import ExitClass, classify_error, stderr_limit
from .ledger import RunFacts
from .parsers import parse
from .prompt import Verdict, judge
from .supervisor import RunResult

AUTH_HINT = "log the CLI in (or set its API key) for the agent's user"
LIMITS = (ExitClass.USAGE_LIMIT, ExitClass.RATE_LIMITED)
KEEP_STDOUT = 4 << 20  # of a JSON-speaking CLI's stdout, read once it exits


def keep_stdout(model: ModelSpec) -> int:
    """How much of stdout a run of `model` keeps for its parser (0: text, none)."""
    return 0 if model.output == OutputMode.TEXT else KEEP_STDOUT


def judge_run(result: RunResult, model: ModelSpec, timeout: float | None) -> Verdict:
    parsed = parse(model.output, result.stdout, result.stderr_tail, result.returncode)
    out_tail, err_tail = result.stdout_tail, result.stderr_tail
    if parsed is not None:
        # The CLI's message instead of its raw JSON; the raw tail when it could not be read.
        out_tail = parsed.text
        if not parsed.unreadable:
            err_tail = ""
    verdict = judge(
        returncode=result.returncode,
        stdout_tail=out_tail,
        stderr_tail=err_tail,
        timed_out=result.timed_out,
        timeout=timeout,
        fail_patterns=model.fail_patterns,
        stalled=result.stalled,
        stall_grace=model.stall_grace,
        no_progress=result.no_progress,
    )
    facts = RunFacts(exit_code=result.returncode, duration_s=round(result.seconds, 3))
    if parsed is not None:
        facts = replace(
            facts,
            session_id=parsed.session_id,
            tokens=parsed.tokens,
            cost_usd=parsed.cost_usd,
            turns=parsed.turns,
        )
    if result.timed_out:
        cls = ExitClass.TIMEOUT
    elif result.stalled is not None or result.no_progress is not None:
        cls = ExitClass.STALLED
    elif parsed is not None and parsed.exit_class is not ExitClass.SUCCESS:
        cls = parsed.exit_class
        if verdict.ok:  # exit 0, yet the CLI said it failed (or said nothing readable)
            verdict = Verdict(False, False, f"{cls.value}: {parsed.text}")
    elif verdict.ok:
        cls = ExitClass.SUCCESS
    else:
        cls = classify_error(verdict.text)
        if cls is ExitClass.FAILED and parsed is None and result.returncode not in (0, None):
            # Text mode: a limit only from an error line of the CLI's stderr, never from the
            # model's transcript on stdout (tests that print "429 Too Many Requests").
            cls = stderr_limit(result.stderr_tail) or cls
    if cls in LIMITS and result.returncode == 0:
        cls = ExitClass.FAILED  # it finished: whatever limit it met, its own retry got past
    if cls is ExitClass.AUTH and parsed is not None and not verdict.permanent:
        verdict = replace(verdict, permanent=True, hint=verdict.hint or AUTH_HINT)
    return replace(verdict, exit_class=cls, facts=facts)
