"""The one exception type the library raises at its boundary, with a message a user can act on."""

from __future__ import annotations

import sys


class CrystalExplorerError(ValueError):
    """Bad input (a structure, a file, a checkpoint) described in one line a user can act on."""


def report_error(message: object) -> int:
    """Print bad input as the one line every command gives (`error: ...` on stderr); its exit status (2)."""
    print(f"error: {message}", file=sys.stderr)
    return 2
