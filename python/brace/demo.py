"""Kept for compatibility: the demo now lives in brace._cli (run it with `brace demo`)."""

from brace._cli.demo import Settings, add_arguments, main, run

__all__ = ["Settings", "add_arguments", "main", "run"]
