"""Tests of `reconciler.spec`."""
