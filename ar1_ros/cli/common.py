"""What every `ar1` subcommand does the same way: usage errors and one-line failures."""
import argparse
import sys


def print_usage(parser: argparse.ArgumentParser) -> int:
    """Print `parser`'s help to stderr; return 2, the exit code of a usage error."""
    parser.print_help(sys.stderr)
    return 2


def fail(prog: str, message: str, code: int = 2) -> int:
    """Print 'PROG: message' to stderr; return `code` (2: a usage error)."""
    print(f'{prog}: {message}', file=sys.stderr)
    return code
