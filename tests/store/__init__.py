"""Tests of `reconciler.store`."""
