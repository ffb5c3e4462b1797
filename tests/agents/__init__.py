"""Tests of `reconciler.agents`."""
