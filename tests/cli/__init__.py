"""Tests of the `cli` package (the `tt` command)."""
