"""How an agent runs its model: the override, the placeholders filled into an argv, and the
output that means a CLI cannot succeed on a retry. The presets themselves are data in
`spec.presets`; `supervisor` runs the process.
"""

from __future__ import annotations

from ..spec.desired import ModelSpec, PromptMode
from ..spec.presets import PRESETS

OVERRIDE_ENV = "TT_MODEL_OVERRIDE"

# Output that means the CLI cannot succeed on a retry: fail at once, with a hint.
PERMANENT_PATTERNS: tuple[tuple[str, str], ...] = (
    (
        r"Not logged in|Please run /login",
        "log the CLI in (or set its API key) for the agent's user",
    ),
    (r"Please set an Auth method", "set GEMINI_API_KEY or configure gemini's auth"),
    (r"No authentication information found", "log copilot in (COPILOT_GITHUB_TOKEN or GH_TOKEN)"),
    (r"cannot be used with root/sudo privileges", "run as a non-root user or set IS_SANDBOX=1"),
    (r"Not inside a trusted directory", "the preset needs --skip-git-repo-check"),
    (
        r"error: unknown option|unexpected argument|Unknown arguments|unrecognized arguments"
        r"|Invalid command format",
        "a flag is not supported",
    ),
    (r"No auth provided", "log auggie in (auggie login) or set AUGMENT_SESSION_AUTH"),
    (r"not able to authenticate you|AuthenticationError", "set the API key for aider's model"),
    (r"not running in a trusted directory", "gemini needs --skip-trust"),
)


def resolve(name: str, custom: dict[str, ModelSpec], override: str | None = None) -> ModelSpec:
    """The model an agent runs: the override (TT_MODEL_OVERRIDE / --model), else its own."""
    chosen = override or name
    if chosen in custom:
        return custom[chosen]
    return PRESETS[chosen]


def render_argv(
    model: ModelSpec,
    *,
    prompt: str,
    prompt_file: str,
    workdir: str,
    python: str,
    extra_args: tuple[str, ...] = (),
    session: tuple[str, ...] = (),
) -> tuple[list[str], str | None]:
    """(argv, stdin text). Placeholders are replaced as whole elements or inside one element;
    `args` from town.toml, then `session` (the model's resume or session args, their
    {session} filled), go before a trailing prompt placeholder (or `-`, stdin's stand-in) so
    variadic flags stay safe."""
    values = {
        "{prompt}": prompt,
        "{prompt_file}": prompt_file,
        "{workdir}": workdir,
        "{python}": python,
    }
    argv: list[str] = []
    for part in model.command:
        for key, value in values.items():
            if key in part:
                part = part.replace(key, value)
        argv.append(part)
    extra_args = (*extra_args, *session)
    if extra_args:
        tail = 1 if model.command[-1] in ("{prompt}", "{prompt_file}", "-") else 0
        if tail and len(model.command) > 1 and model.command[-2] == "--":
            tail = 2
        argv[len(argv) - tail : len(argv) - tail] = list(extra_args)
    stdin_text = prompt if model.prompt == PromptMode.STDIN else None
    if model.prompt == PromptMode.ARG and "{prompt}" not in "".join(model.command):
        argv.append(prompt)
    if model.prompt == PromptMode.FILE and "{prompt_file}" not in "".join(model.command):
        argv.append(prompt_file)
    return argv, stdin_text
