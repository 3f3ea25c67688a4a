"""The one exception type the library raises at its boundary, with a message a user can act on."""

from __future__ import annotations


class CrystalExplorerError(ValueError):
    """Bad input (a structure, a file, a checkpoint) described in one line a user can act on."""
