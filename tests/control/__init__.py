"""Tests of `reconciler.control`."""
