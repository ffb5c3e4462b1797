"""Shared fixtures: real Redis/Valkey servers and fakeredis (see tests/redis_fixtures.py)."""

pytest_plugins = ("tests.redis_fixtures",)
