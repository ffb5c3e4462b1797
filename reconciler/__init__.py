"""Tinytown's engine: desired state from files, observed state from Redis, and the loop between.

This package never imports click; the `cli` package is its only user interface.
"""

__version__ = "0.1.0"
