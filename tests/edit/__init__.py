"""Tests of `reconciler.edit`."""
