"""Training and evaluation of Crystal Explorer's models (`python -m train`, `python -m train.evaluate`)."""

from __future__ import annotations

import json
from collections.abc import Callable

from crystal_explorer.errors import CrystalExplorerError, report_error

USER_ERRORS = (CrystalExplorerError, ValueError, FileNotFoundError)  # bad input, reported in one line


def user_error(exc: Exception) -> int:
    """Report bad input as one line on stderr; the exit status every train command gives it (2)."""
    return report_error(exc)


def json_command(action: Callable[[], dict]) -> int:
    """Run a command's work and print its summary as JSON (exit 0), or its bad-input error (exit 2)."""
    try:
        info = action()
    except USER_ERRORS as exc:
        return user_error(exc)
    print(json.dumps(info, indent=2))
    return 0
