"""Shared fixtures: real Redis/Valkey servers and fakeredis (see tests/redis_fixtures.py).

A suite started in the background by a script (`.ci/stress &`, `nohup … &`) begins with SIGINT
ignored, and every process it starts would inherit that: a `tt conductor` the tests stop with
SIGINT (as a person does with Ctrl-C) would not stop. The tests' processes get SIGINT back.
"""

import signal

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

pytest_plugins = ("tests.redis_fixtures",)
