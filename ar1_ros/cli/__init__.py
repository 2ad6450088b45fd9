"""The `ar1` command line: one entry point whose subcommands live in their own modules."""
from ar1_ros.cli.main import main

__all__ = ['main']
