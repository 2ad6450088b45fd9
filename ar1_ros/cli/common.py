"""What every `ar1` subcommand does the same way: usage errors, one-line failures, options."""
import argparse
from pathlib import Path
import sys


def print_usage(parser: argparse.ArgumentParser) -> int:
    """Print `parser`'s help to stderr; return 2, the exit code of a usage error."""
    parser.print_help(sys.stderr)
    return 2


def fail(prog: str, message: str, code: int = 2) -> int:
    """Print 'PROG: message' to stderr; return `code` (2: a usage error)."""
    print(f'{prog}: {message}', file=sys.stderr)
    return code


def add_params_option(parser: argparse.ArgumentParser, uses: str = 'topics, selection') -> None:
    """Add --params FILE: the node's parameter file, default the package's config/ar1.yaml.

    uses: what the subcommand reads from it, named in the help.
    """
    parser.add_argument('--params', type=Path, default=None, metavar='FILE',
                        help=f"node parameter file ({uses}); default: the package's "
                             'config/ar1.yaml')
