"""Every key a Lua script touches is one of its town's, so each script stays in the town's slot
on a Redis Cluster (Valkey refuses a script that reaches another slot, but only when it runs:
this reads every script, including those no cluster test runs). A key argument is built from
the prefix `P` (ARGV[1], `tt:{TOWN}:`), `tkey(...)`, or `KEYS[1]`, or is a variable assigned
only such values; the apply lock's two scripts take the lock key from the store (`ARGV[4]`).
`SORT ... GET` patterns carry the prefix too (a cluster allows them only within the slot)."""

from __future__ import annotations

import re

import pytest

from reconciler.store.scripts import LIBRARY, LUA_DIR, lua_source

TOWN_KEY = re.compile(r"^(P \.\.|tkey\(|KEYS\[1\]$)")
CALL = re.compile(r"redis\.call\(\s*'(\w+)'\s*,\s*([^,)]+(?:\([^)]*\))?)")
PCALL = re.compile(r"pcall\(redis\.call,\s*'(\w+)'\s*,\s*([^,)]+)")
LOCK_KEY = {"unlock", "take_over_lock"}  # ARGV[4] = keys.apply_lock (store/coordination.py)
SCRIPTS = sorted(p.stem for p in LUA_DIR.glob("*.lua") if p.stem not in LIBRARY)
# lib.lua's `move(from, to)` (RENAME in single-key commands): its body's keys are its two
# arguments, so its call sites are audited instead.
MOVE_BODY = re.compile(r"local function move\(from, to\)\n.*?\nend\n", re.S)
MOVE_CALL = re.compile(r"\bmove\(([^,()]+),\s*([^,()]+)\)")


def _assignments(source: str, name: str) -> list[str]:
    """The values assigned to variable `name` anywhere in `source` (one per name of a
    `local a, b = x, y` too), and the tables a `for _, name in ipairs({...})` walks."""
    values: list[str] = []
    for line in source.splitlines():
        code = line.split("--", 1)[0]
        m = re.match(r"\s*(?:local\s+)?([\w, ]+?)\s*=(?!=)\s*(.+)", code)
        if m:
            names = [n.strip() for n in m[1].split(",")]
            if name in names:
                parts = [p.strip() for p in re.split(r",\s*(?=P \.\.|tkey\(|KEYS)", m[2])]
                values.append(parts[names.index(name)] if len(parts) == len(names) else m[2])
        loop = re.match(rf"\s*for _, {name} in ipairs\(\{{(.+)\}}\) do", code)
        if loop:
            values += [item.lstrip("{").strip() for item in re.findall(r"\{[^}]*", loop[1])]
    return values


def _key_ok(script: str, source: str, arg: str) -> bool:
    arg = arg.strip()
    if TOWN_KEY.match(arg) or (script in LOCK_KEY and arg == "ARGV[4]"):
        return True
    name = arg.removesuffix("[1]")
    if not re.fullmatch(r"\w+", name):
        return False
    values = _assignments(source, name)
    return bool(values) and all(TOWN_KEY.match(v) for v in values)


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_key_a_script_touches_is_its_towns(script: str) -> None:
    source = lua_source(script)
    assert MOVE_BODY.search(source), "lib.lua's move() is not where the audit expects it"
    body = MOVE_BODY.sub("", source)
    calls = CALL.findall(body) + PCALL.findall(body)
    calls += [("move", arg) for pair in MOVE_CALL.findall(body) for arg in pair]
    assert calls, f"{script}.lua calls nothing?"
    foreign = [f"{cmd} {arg}" for cmd, arg in calls if not _key_ok(script, source, arg)]
    assert foreign == [], f"{script}.lua: keys not built from the town's prefix: {foreign}"
    for sort in re.findall(r"'SORT',[^)]*\)", source):  # its GET patterns: `t` = P .. 'task:*->'
        assert re.search(r"local t = P \.\. 'task:\*->'", source), script
        for pattern in re.findall(r"'GET',\s*([^,)]+)", sort):
            assert pattern.strip() == "'#'" or pattern.strip().startswith("t .."), pattern


def test_the_audit_catches_a_key_of_another_town() -> None:
    source = "local P = ARGV[1]\nlocal other = 'tt:{else}:x'\n"
    assert not _key_ok("x", source, "other")
    assert not _key_ok("x", source, "'tt:{else}:x'")
    assert not _key_ok("x", source, "ARGV[4]")
    assert _key_ok("x", source + "local k = P .. 'task:' .. id\n", "k")
    moved = "local function move(from, to)\n  redis.call('DEL', from)\nend\nmove(k, other)\n"
    assert [arg for pair in MOVE_CALL.findall(MOVE_BODY.sub("", moved)) for arg in pair] == [
        "k",
        "other",
    ]


# Commands naming two keys or more: a node importing the slot refuses one when a key is missing,
# mid-script (lib.lua `move` does RENAME in single-key commands).
MULTI_KEY = re.compile(
    r"redis\.call\(\s*'(RENAME|RENAMENX|COPY|SMOVE|LMOVE|RPOPLPUSH|MSET|MGET|[SZ](?:UNION|INTER|DIFF)STORE)'"
    r"|redis\.call\(\s*'(DEL|EXISTS|UNLINK|TOUCH)'\s*,[^,)]+,"
)


def test_no_script_names_two_keys_in_one_command() -> None:
    for lua in sorted(LUA_DIR.glob("*.lua")):
        found = [m[0] for m in MULTI_KEY.finditer(lua.read_text())]
        assert found == [], f"{lua.name}: {found}"
    assert MULTI_KEY.search("redis.call('DEL', P .. 'a', P .. 'b')")
    assert MULTI_KEY.search("redis.call('RENAME', k, tomb)")
    assert not MULTI_KEY.search("redis.call('DEL', P .. 'bell:' .. a)")
