"""Who may talk to `tt serve` (`reconciler/api/auth.py`), on plain values: the token's source,
the loopback rule, the bearer check, the host and origin checks; and `[serve] token_env` in
town.toml (a name, checked; never a value)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.api.auth import Guard, check_bind, is_loopback, own_origins, token_of
from reconciler.errors import TtError
from reconciler.spec import loader
from tests.spec.test_loader import only_problem, write_town


def test_loopback_names() -> None:
    for host in ("127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.0.0.7", "example.com", "localhost.example.com", ""):
        assert not is_loopback(host), host


def test_the_token_comes_from_tt_api_token_else_the_variable_the_file_names() -> None:
    assert token_of(None, {}) is None
    assert token_of("MINE", {"MINE": "b"}) == "b"
    assert token_of("MINE", {"MINE": "b", "TT_API_TOKEN": "a"}) == "a"
    with pytest.raises(TtError, match="MINE is set but empty"):
        token_of("MINE", {"MINE": " "})


def test_beyond_loopback_only_with_a_token() -> None:
    check_bind("127.0.0.1", None, None)
    check_bind("0.0.0.0", "t", None)
    with pytest.raises(TtError, match=r"refusing to serve on 0\.0\.0\.0 without a token") as e:
        check_bind("0.0.0.0", None, "MINE")
    assert e.value.hint is not None and "TT_API_TOKEN or MINE" in e.value.hint


def guard(token: str | None, host: str = "127.0.0.1") -> Guard:
    async def app(*_: object) -> None:
        raise AssertionError("not called")

    return Guard(app, token, own_origins(host, 8321))


def test_a_token_is_needed_in_every_request_and_compared_whole() -> None:
    g = guard("s3cret")
    host = {"host": "127.0.0.1:8321"}
    assert g.refusal("GET", {**host, "authorization": "Bearer s3cret"}) is None
    assert g.refusal("GET", {**host, "authorization": "bearer s3cret"}) is None
    for given in ("", "Bearer", "Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "s3cret"):
        refused = g.refusal("GET", {**host, "authorization": given})
        assert refused is not None and refused[0] == 401, given


def test_without_a_token_only_a_loopback_host_is_served() -> None:
    g = guard(None)
    assert g.refusal("GET", {"host": "127.0.0.1:8321"}) is None
    assert g.refusal("GET", {"host": "[::1]:8321"}) is None
    assert g.refusal("GET", {"host": "localhost:8321"}) is None
    refused = g.refusal("GET", {"host": "rebound.example:8321"})
    assert refused is not None and refused[0] == 403


def test_a_write_from_another_origin_is_refused() -> None:
    g = guard(None)
    host = {"host": "127.0.0.1:8321"}
    for origin in ("http://127.0.0.1:8321", "http://localhost:8321", "http://[::1]:8321"):
        assert g.refusal("POST", {**host, "origin": origin}) is None, origin
    assert g.refusal("POST", host) is None  # no Origin: not a browser's cross-site request
    for origin in ("http://evil.example", "http://127.0.0.1:9999", "null", "http://127.0.0.1"):
        refused = g.refusal("POST", {**host, "origin": origin})
        assert refused is not None and refused[0] == 403, origin
    assert g.refusal("GET", {**host, "origin": "http://evil.example"}) is None
    # With a token, the name the server was reached by is its own too.
    t = guard("t", host="0.0.0.0")
    named = {"host": "town.lan:8321", "authorization": "Bearer t"}
    assert t.refusal("POST", {**named, "origin": "http://town.lan:8321"}) is None
    assert t.refusal("POST", {**named, "origin": "http://evil.example:8321"}) is not None


def test_serve_token_env_is_a_variable_name(tmp_path: Path) -> None:
    town = '[town]\nname = "t"\n\n[serve]\ntoken_env = "MY_TOKEN"\n'
    paths = write_town(tmp_path, town)
    assert loader.load_settings(paths).serve_token_env == "MY_TOKEN"
    problem = only_problem('[town]\nname = "t"\n\n[serve]\ntoken_env = "not a name"\n')
    assert problem.line == 5 and problem.path == "$.serve.token_env", problem.render()
    problem = only_problem('[town]\nname = "t"\n\n[serve]\ntoken = "s3cret"\n')
    assert problem.path.startswith("$.serve"), problem.render()


def test_a_non_ascii_token_matches_the_bytes_a_client_sends() -> None:
    """Review of issue 12, finding 14: the header's bytes (UTF-8 from curl) against the
    token's UTF-8; ASGI hands headers over as bytes, read here as latin-1."""
    g = guard("pässwörd-ünïcode")
    sent = "Bearer pässwörd-ünïcode".encode().decode("latin-1")
    assert g.refusal("GET", {"host": "127.0.0.1:8321", "authorization": sent}) is None
    wrong = b"Bearer passwort".decode("latin-1")
    refused = g.refusal("GET", {"host": "127.0.0.1:8321", "authorization": wrong})
    assert refused is not None and refused[0] == 401


def test_an_origin_matches_the_host_it_was_sent_to_whatever_the_scheme() -> None:
    g = guard(None, host="127.0.0.2")
    assert g.refusal("POST", {"host": "127.0.0.2:8321", "origin": "http://127.0.0.2:8321"}) is None
    t = guard("t", host="0.0.0.0")
    behind = {"host": "tt.example", "authorization": "Bearer t"}
    assert t.refusal("POST", {**behind, "origin": "https://tt.example"}) is None
    assert t.refusal("POST", {**behind, "origin": "https://tt.example:8443"}) is not None
    assert t.refusal("POST", {**behind, "origin": "null"}) is not None
