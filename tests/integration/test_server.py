"""The embedded Valkey server and external URLs, with real servers and real processes.

Every server a test starts is stopped by its pid at the end; the shared Redis on 6379 is only
read, or written under a unique town prefix that is deleted afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler import server
from reconciler.errors import RedisUnavailable, mask_url
from reconciler.store.client import ENV_URL, Store, connect
from reconciler.town import TownPaths
from tests.redis_fixtures import (  # noqa: F401
    flush_town,
    redis_store,
    redis_url,
    system_redis_url,
    town_name,
    valkey_url,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="finds processes through /proc"),
]
REPO = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def pid_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    return state[state.rfind(b")") + 2 :][:1] in (b"Z", b"X")


def town_servers(paths: TownPaths) -> list[int]:
    """Pids of live processes working in the town's data dir (a server chdirs there)."""
    data = os.path.realpath(paths.data_dir)
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd") == data and not pid_gone(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture
def town(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TownPaths]:
    """A town folder (town.toml, embedded Redis) whose server, if any, is stopped afterwards."""
    monkeypatch.delenv(ENV_URL, raising=False)
    (tmp_path / "town.toml").write_text('[town]\nname = "demo"\nredis = "embedded"\n')
    paths = TownPaths(tmp_path)
    yield paths
    stop_by_pid(paths)


def pid_of(paths: TownPaths) -> int:
    st = server.status(paths)
    assert st is not None, "the town's server is not running"
    return st.pid


def stop_by_pid(paths: TownPaths) -> None:
    for pid in town_servers(paths):
        os.kill(pid, signal.SIGTERM)
        wait_for(functools.partial(pid_gone, pid))


# -- the embedded server --------------------------------------------------------------------------


def test_start_listens_only_on_a_private_unix_socket(town: TownPaths) -> None:
    url = server.ensure_running(town)
    assert url == f"unix://{town.socket}"
    assert stat.S_IMODE(town.socket.stat().st_mode) == 0o700
    assert stat.S_ISSOCK(town.socket.stat().st_mode)
    with Store.open(url, "demo") as store:
        assert store.client.config_get("port") == {"port": "0"}
        assert store.client.config_get("appendonly") == {"appendonly": "yes"}
        assert store.client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert store.client.config_get("dir")["dir"] == str(town.data_dir)
    st = server.status(town)
    assert st is not None and st.server == "valkey" and st.pid > 0
    assert (town.state_dir / "valkey.pid").read_text().strip() == str(st.pid)
    assert (town.data_dir / "appendonlydir").is_dir()
    assert stat.S_IMODE(town.data_dir.stat().st_mode) == 0o700
    assert town_servers(town) == [st.pid]


def test_second_call_reuses_the_server_fast(town: TownPaths) -> None:
    url = server.ensure_running(town)
    pid = pid_of(town)
    times = []
    for _ in range(50):
        started = time.perf_counter()
        assert server.ensure_running(town) == url
        times.append(time.perf_counter() - started)
    times.sort()
    assert times[len(times) // 2] < 0.005  # one unix-socket PING, no lock, no process
    assert pid_of(town) == pid
    assert town_servers(town) == [pid]


def test_server_outlives_the_process_that_started_it(town: TownPaths) -> None:
    code = (
        "import sys; from pathlib import Path; from reconciler import server; "
        "from reconciler.town import TownPaths; "
        "print(server.ensure_running(TownPaths(Path(sys.argv[1]))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(town.root)], capture_output=True, text=True, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == server.url(town)
    st = server.status(town)
    assert st is not None and st.uptime_seconds >= 0
    assert town_servers(town) == [st.pid]


CONCURRENT = """
import json, sys, time
from pathlib import Path
from reconciler import server
from reconciler.store.client import Store
from reconciler.town import TownPaths
paths, start_at = TownPaths(Path(sys.argv[1])), float(sys.argv[2])
time.sleep(max(0.0, start_at - time.time()))
url = server.ensure_running(paths)
with Store.open(url, "demo") as store:
    store.client.incr("tt:{demo}:starters")
print(json.dumps({"url": url, "pid": server.status(paths).pid}))
"""


def test_concurrent_starts_from_several_processes_share_one_server(town: TownPaths) -> None:
    start_at = time.time() + 1.5  # after every interpreter has imported everything
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT, str(town.root), repr(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for _ in range(3)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    assert len({r["url"] for r in results}) == 1
    assert len({r["pid"] for r in results}) == 1
    assert town_servers(town) == [results[0]["pid"]]
    with Store.open(results[0]["url"], "demo") as store:
        assert store.client.get("tt:{demo}:starters") == "3"


def test_stop_shuts_the_server_down(town: TownPaths) -> None:
    server.ensure_running(town)
    pid = pid_of(town)
    assert server.stop(town) is True
    assert pid_gone(pid)
    assert not town.socket.exists()
    assert server.status(town) is None
    assert not server.is_running(town)
    assert server.stop(town) is False


def test_kill_9_then_restart_keeps_the_data(town: TownPaths) -> None:
    url = server.ensure_running(town)
    with Store.open(url, "demo") as store:
        store.client.hset("tt:{demo}:task:a", mapping={"state": "running", "attempt": "2"})
    pid = pid_of(town)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: pid_gone(pid))
    assert town.socket.exists()  # stale socket and pid file are left behind
    assert (town.state_dir / "valkey.pid").read_text().strip() == str(pid)
    assert not server.is_running(town)

    assert server.ensure_running(town) == url
    new_pid = pid_of(town)
    assert new_pid != pid
    with Store.open(url, "demo") as store:
        assert store.client.hgetall("tt:{demo}:task:a") == {"state": "running", "attempt": "2"}


def test_a_stale_pid_file_naming_another_process_is_never_trusted(town: TownPaths) -> None:
    town.state_dir.mkdir()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (town.state_dir / "valkey.pid").write_text(f"{sleeper.pid}\n")
        assert server.stop(town) is False  # not signalled: it is not this town's server
        assert sleeper.poll() is None
        server.ensure_running(town)  # and it does not block a start either
        st = server.status(town)
        assert st is not None and st.pid != sleeper.pid
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_long_town_path_uses_a_short_private_socket(tmp_path: Path) -> None:
    root = tmp_path / "a folder with spaces" / ("deep" * 10) / ("deeper" * 10)
    root.mkdir(parents=True)
    paths = TownPaths(root)
    assert len(os.fsencode(paths.socket)) > 108
    sock = server.socket_path(paths)
    assert len(os.fsencode(sock)) <= 100 and sock.parent == Path(f"/tmp/tt-{os.getuid()}")
    try:
        url = server.ensure_running(paths)
        assert url == f"unix://{sock}"
        assert os.readlink(paths.socket) == str(sock)  # recorded in .tt for people and tools
        assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(sock.stat().st_mode) == 0o700
        # Another process, another spelling of the same folder: the same socket.
        assert server.socket_path(TownPaths(Path(os.path.relpath(root)))) == sock
        with Store.open(url, "demo") as store:
            assert store.ping()
        assert server.ensure_running(paths) == url
    finally:
        assert server.stop(paths) is True
    assert not sock.exists()


def test_start_failure_reports_the_servers_own_words(town: TownPaths) -> None:
    aof = town.data_dir / "appendonlydir"
    aof.mkdir(parents=True)
    (aof / "appendonly.aof.manifest").write_text("this is not a manifest\n")
    with pytest.raises(RedisUnavailable, match="exited at start") as err:
        server.ensure_running(town, timeout=10)
    assert err.value.hint is not None and "valkey.log" in err.value.hint
    assert town_servers(town) == []


def test_falls_back_to_a_server_binary_on_path(
    town: TownPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server on PATH")
    monkeypatch.setattr(server.binary, "_wheel_binary", lambda: None)
    assert server.find_binary().name in ("valkey-server", "redis-server")
    server.ensure_running(town)
    st = server.status(town)
    assert st is not None and st.pid in town_servers(town)
    assert server.stop(town) is True


# -- external servers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def scratch_redis(args: list[str], url: str, workdir: Path) -> Iterator[None]:
    """A throwaway redis-server (never the shared one), stopped by its pid afterwards."""
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server on PATH")
    argv = ["redis-server", *args, "--save", "", "--appendonly", "no", "--dir", str(workdir)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:

        def answers() -> bool:
            if proc.poll() is not None:
                pytest.skip(f"scratch redis-server refused {args}")
            try:
                Store.open(url, "probe").close()
                return True
            except RedisUnavailable:
                return False

        wait_for(answers)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def password_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A scratch redis-server with a password and an ACL user `alice`; yields its port."""
    port = free_port()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--requirepass", "secret"]
    args += ["--user", "alice", "on", ">alicepw", "~tt:*", "+@all"]
    url = f"redis://:secret@127.0.0.1:{port}/0"
    with scratch_redis(args, url, tmp_path_factory.mktemp("password-redis")):
        yield port


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A scratch TLS-only redis-server with a self-signed certificate; yields (port, CA file)."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a certificate")
    workdir = tmp_path_factory.mktemp("tls-redis")
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    argv = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    argv += ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
    argv += ["-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        argv,
        check=True,
        capture_output=True,
    )
    port = free_port()
    args = ["--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"]
    args += ["--tls-cert-file", str(cert), "--tls-key-file", str(key)]
    args += ["--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no", "--requirepass", "secret"]
    url = f"rediss://:secret@127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    with scratch_redis(args, url, workdir):
        yield port, cert


@pytest.mark.parametrize("lean", [False, True], ids=["redis-py", "lean"])
def test_password_url_works_with_the_right_password(password_redis: int, lean: bool) -> None:
    with Store.open(f"redis://:secret@127.0.0.1:{password_redis}/0", "t", lean=lean) as store:
        assert store.ping()
        assert store.server_info()["redis_version"]
    url = f"redis://alice:alicepw@127.0.0.1:{password_redis}/2"
    with Store.open(url, "t", lean=lean) as store:
        assert store.ping()
        assert store.client.execute_command("ACL", "WHOAMI") == "alice"
        assert store.client.execute_command("CLIENT", "INFO").split(" db=")[1][:2] == "2 "


@pytest.mark.parametrize("lean", [False, True], ids=["redis-py", "lean"])
@pytest.mark.parametrize("userinfo", [":wrong", "alice:wrong", "", "bob:secret"])
def test_wrong_credentials_say_authentication_failed_masked(
    password_redis: int, userinfo: str, lean: bool
) -> None:
    url = f"redis://{userinfo}{'@' if userinfo else ''}127.0.0.1:{password_redis}/0"
    with pytest.raises(RedisUnavailable) as err:
        Store.open(url, "t", lean=lean)
    message = str(err.value)
    assert message.startswith(f"cannot reach Redis at {mask_url(url)}: authentication failed")
    assert "wrong" not in message and "secret" not in message


def test_env_url_wins_over_the_embedded_setting(
    password_redis: int, town: TownPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_URL, f"redis://:secret@127.0.0.1:{password_redis}/0")
    with connect("embedded", town, "demo") as store:
        assert store.client.connection_pool.connection_kwargs["port"] == password_redis
    assert not town.state_dir.exists()  # no embedded server was started


def test_rediss_url_with_the_servers_ca(tls_redis: tuple[int, Path]) -> None:
    port, ca = tls_redis
    for lean in (False, True):  # TLS: redis-py's client even where a lean one is asked for
        url = f"rediss://:secret@127.0.0.1:{port}/0?ssl_ca_certs={ca}"
        with Store.open(url, "t", lean=lean) as store:
            assert store.ping()
            assert type(store.client).__module__.startswith("redis.")
    with pytest.raises(RedisUnavailable) as err:  # a certificate nobody vouches for
        Store.open(f"rediss://:secret@127.0.0.1:{port}/0", "t")
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)
    assert str(err.value).startswith(f"cannot reach Redis at rediss://:****@127.0.0.1:{port}/0")


def test_unreachable_url_is_reported_within_seconds(tmp_path: Path) -> None:
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    with pytest.raises(RedisUnavailable, match="Connection refused"):
        connect(url, TownPaths(tmp_path), "t")
    assert time.monotonic() - started < 3


# -- the same Store against Valkey and the system Redis ---------------------------------------


def test_store_round_trips_on_valkey_and_redis(redis_store: Store) -> None:  # noqa: F811
    keys = redis_store.keys
    redis_store.client.hset(keys.agent("dev"), mapping={"state": "idle"})
    assert redis_store.client.hgetall(keys.agent("dev")) == {"state": "idle"}  # RESP2 shape
    redis_store.send("dev", "conductor", "hi")
    [message] = redis_store.peek_messages("dev")
    assert message.text == "hi"
    assert redis_store.blocking.blpop([keys.inbox("dev")], timeout=1)[0] == keys.inbox("dev")
    major, minor = str(redis_store.server_info()["redis_version"]).split(".")[:2]
    assert (int(major), int(minor)) >= (6, 2)


def test_flush_town_leaves_other_keys_alone(redis_store: Store) -> None:  # noqa: F811
    outsider = f"tt-test-outsider:{redis_store.town}"
    redis_store.client.set(outsider, "1")
    try:
        redis_store.client.set(redis_store.keys.meta, "1")
        assert flush_town(redis_store.client, redis_store.town) == 1
        assert redis_store.client.get(outsider) == "1"
    finally:
        redis_store.client.delete(outsider)


# -- the CLI --------------------------------------------------------------------------------------


def tt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != ENV_URL}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], capture_output=True, text=True, cwd=REPO, env=env
    )


def test_cli_start_status_stop(town: TownPaths) -> None:
    from cli.main import cli

    runner = CliRunner()
    d = str(town.root)
    done = runner.invoke(cli, ["server", "status", "--town", d])
    assert done.exit_code == 0 and done.output.startswith("not running")
    done = runner.invoke(cli, ["server", "start", "--town", d])
    assert done.exit_code == 0 and done.output.startswith("server started (pid ")
    done = runner.invoke(cli, ["server", "start", "--town", d])
    assert done.output.startswith("server already running")
    done = runner.invoke(cli, ["server", "status", "--town", d, "-o", "json"])
    status = json.loads(done.output)
    assert status["running"] is True and status["external"] is False
    assert status["socket"] == str(town.socket) and status["version"]
    assert status["pid"] == pid_of(town)
    done = runner.invoke(cli, ["server", "status", "--town", d])
    assert "uptime:" in done.output and "memory:" in done.output
    done = runner.invoke(cli, ["server", "stop", "--town", d])
    assert done.exit_code == 0 and done.output == "server stopped\n"
    assert server.status(town) is None


def test_cli_on_an_external_town(password_redis: int, tmp_path: Path) -> None:
    (tmp_path / "town.toml").write_text(
        f'[town]\nname = "ext"\nredis = "redis://:secret@127.0.0.1:{password_redis}/0"\n'
    )
    done = tt("server", "start", "--town", str(tmp_path))
    assert done.returncode == 0
    assert "external Redis at redis://:****@127.0.0.1" in done.stdout
    assert "nothing to start" in done.stdout and "secret" not in done.stdout
    done = tt("server", "status", "--town", str(tmp_path), "-o", "json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["external"] is True and status["running"] is True
    assert not (tmp_path / ".tt").exists()


def test_cli_unreachable_external_town_is_one_line_exit_1(tmp_path: Path) -> None:
    (tmp_path / "town.toml").write_text(
        f'[town]\nname = "ext"\nredis = "redis://:secret@127.0.0.1:{free_port()}/0"\n'
    )
    done = tt("server", "status", "--town", str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot reach Redis at redis://:****@127.0.0.1:")
    assert "Connection refused" in done.stderr
    assert "Traceback" not in done.stderr and "secret" not in done.stderr


def test_a_user_restricted_to_the_towns_keys_reads_and_checks_every_task(
    password_redis: int,
) -> None:
    """Redis 7 refuses SORT ... GET to a user without access to all keys: the observed state and
    the no-op check then read the tasks one by one, with the same answers."""
    from tests.store.test_transitions import rec

    url = f"redis://alice:alicepw@127.0.0.1:{password_redis}/0"
    with Store.open(url, "acl") as store:
        store.upsert_tasks([rec("a", "dev"), rec("b", "dev", deps=("a",))], 1)
        rows = store.task_rows(("state", "target"))
        assert rows == [["a", "ready", "dev"], ["b", "blocked", "dev"]]
        assert store._sort_denied  # the SORT was refused, and the fallback answered
        assert store.check_clean("fp", record=True)[0]
        assert store.check_clean("fp", record=False)[0]
        store.client.lrem(store.keys.queue("dev"), 0, "a")  # a repair is still seen
        assert not store.check_clean("fp", record=False)[0]


def test_a_digest_computed_by_the_client_is_the_walks(redis_store: Store) -> None:  # noqa: F811
    """`store_clean` records the sha1 that `lua/clean.lua` computes by walking the tasks (so a
    no-op apply after a full one takes the fast path), on Valkey and on Redis."""
    from reconciler.store.cleanrows import digests
    from reconciler.store.observed import observe
    from tests.store.test_cleanrows import rec

    records = [rec("a"), rec("b", deps=("a",), order=1), rec("c", deps=("a", "b"), order=1)]
    redis_store.upsert_tasks(records, 1)
    rows = observe(redis_store)[1]
    assert redis_store.store_clean("fp", rows) == digests(rows)[0]
    assert redis_store.check_clean("fp", record=False)[0]
    redis_store.check_clean("fp", record=True)  # the walk records what it computes itself
    assert redis_store.check_clean_digest("fp", record=False)[2] == digests(rows)[0]


def test_starting_the_server_makes_an_older_open_state_folder_private(town: TownPaths) -> None:
    town.state_dir.mkdir(mode=0o755, exist_ok=True)
    town.state_dir.chmod(0o755)  # as an older tt left it
    server.ensure_running(town)
    assert town.state_dir.stat().st_mode & 0o777 == 0o700
    assert server.stop(town)
