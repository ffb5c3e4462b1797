"""The `tt` command: parse, call one engine function, render. The only importer of click."""
