"""Model CLI presets: the argv template of each agent CLI and how its prompt travels.

Data only, and part of the desired state's vocabulary (town.toml names a preset or a
[models.X] entry); the worker (`agents.models`) fills the placeholders, `supervisor` runs it.
Placeholders are whole argv elements, never shell-joined: {prompt}, {prompt_file}, {workdir}, and
{session} in how a CLI resumes a session (`resume_args`) or starts one under an id tt chose
(`session_args`); `resume_rejected` is its answer to a session it does not have (observed
on the installed CLIs: tests/integration/test_real_clis.py).
Flags were checked against the real CLIs (see CLI-FACTS.md and tests/integration). No preset
puts the prompt in argv: every CLI here reads it from stdin or a file (`ps` shows no task text).
"""

from __future__ import annotations

from .desired import ModelSpec, OutputMode, PromptMode

SIM = "sim"

PRESETS: dict[str, ModelSpec] = {
    # As root, claude refuses --dangerously-skip-permissions unless IS_SANDBOX=1; acceptEdits is
    # accepted. `-p` reads the prompt from stdin: it stays out of argv (and `ps`), and nothing
    # follows the variadic --allowedTools for it to eat. Its stream-json (which `-p` accepts
    # only with --verbose) streams every message as it comes, so a run that reads and thinks
    # is making progress (`--output-format json` prints nothing until the end), and ends with
    # one result object, also on a failure such as "Not logged in": session id, tokens, cost.
    "claude": ModelSpec(
        name="claude",
        command=(
            "claude",
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            "acceptEdits",
            "--allowedTools",
            "Bash",
            "Edit",
            "Write",
        ),
        prompt=PromptMode.STDIN,
        output=OutputMode.CLAUDE_JSON,
        resume_args=("--resume", "{session}"),
        session_args=("--session-id", "{session}"),
        resume_rejected=(r"No conversation found with session ID",),
    ),
    # `codex exec -` reads the prompt from stdin (it reads stdin to EOF in any case).
    "codex": ModelSpec(
        name="codex",
        command=(
            "codex",
            "exec",
            "-s",
            "workspace-write",
            "--skip-git-repo-check",
            "--color",
            "never",
            "-C",
            "{workdir}",
            "-",
        ),
        prompt=PromptMode.STDIN,
        # Without credentials or network it never fails: it retries forever (CLI-FACTS).
        stall_patterns=(r"Reconnecting\.\.\. waiting for network",),
        # `exec [options] resume ID -`. Codex takes no session id of ours: it resumes only
        # where its output named the session (`output = "codex-jsonl"`).
        resume_args=("resume", "{session}"),
        resume_rejected=(r"no rollout found for thread id",),
    ),
    "codex-mini": ModelSpec(
        name="codex-mini",
        command=(
            "codex",
            "exec",
            "-m",
            "gpt-6-luna",
            "-s",
            "workspace-write",
            "--skip-git-repo-check",
            "--color",
            "never",
            "-C",
            "{workdir}",
            "-",
        ),
        prompt=PromptMode.STDIN,
        stall_patterns=(r"Reconnecting\.\.\. waiting for network",),
        # `exec [options] resume ID -`. Codex takes no session id of ours: it resumes only
        # where its output named the session (`output = "codex-jsonl"`).
        resume_args=("resume", "{session}"),
        resume_rejected=(r"no rollout found for thread id",),
    ),
    # Without --print and without a TTY auggie skips its auth error and retries forever.
    "auggie": ModelSpec(
        name="auggie",
        command=(
            "auggie",
            "--print",
            "--quiet",
            "-w",
            "{workdir}",
            "--instruction-file",
            "{prompt_file}",
        ),
        prompt=PromptMode.FILE,
    ),
    # aider exits 0 after its API call failed: these lines on its output mean failure, unless
    # aider's own "Retrying in N seconds..." follows them (the retry may have succeeded; its
    # final error is printed with no retry after it).
    "aider": ModelSpec(
        name="aider",
        command=(
            "aider",
            "--yes-always",
            "--no-pretty",
            "--no-stream",
            "--no-check-update",
            "--no-analytics",
            "--no-show-model-warnings",
            "--no-auto-commits",
            "--message-file",
            "{prompt_file}",
        ),
        prompt=PromptMode.FILE,
        fail_patterns=(
            r"litellm\.\w*Error(?![\s\S]*Retrying in)",
            r"The API provider's servers are down(?![\s\S]*Retrying in)",
            r"No LLM model was specified",
            r"file not found error",
        ),
        # With no key or model it waits ~5 minutes for a browser login (CLI-FACTS).
        stall_patterns=(r"Waiting up to \d+ minutes for you to finish in the browser",),
    ),
    # In an untrusted folder gemini silently downgrades --yolo, hence --skip-trust. Piped stdin
    # without -p is a headless run on that prompt.
    "gemini": ModelSpec(
        name="gemini",
        command=("gemini", "--skip-trust", "--yolo"),
        prompt=PromptMode.STDIN,
        resume_args=("--resume", "{session}"),
        session_args=("--session-id", "{session}"),
        resume_rejected=(r"Error resuming session",),
    ),
    # Piped stdin without -p is a non-interactive run on that prompt (it exits when done).
    "copilot": ModelSpec(
        name="copilot",
        command=(
            "copilot",
            "--allow-all-tools",
            "--no-auto-update",
            "--no-ask-user",
            "-s",
            "-C",
            "{workdir}",
        ),
        prompt=PromptMode.STDIN,
        resume_args=("--resume={session}",),
        session_args=("--session-id={session}",),
        resume_rejected=(r"No session, task, or name matched",),
    ),
    # The built-in offline model: rehearse any workflow without API keys.
    SIM: ModelSpec(
        name=SIM,
        command=("{python}", "-m", "reconciler.agents.sim"),
        prompt=PromptMode.STDIN,
    ),
}
