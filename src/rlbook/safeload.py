"""What to tell a user whose weights file would not load safely.

:func:`rlbook.checkpoint.load_checkpoint` loads with ``weights_only=True``: a
file holding Python objects other than tensors and plain values is refused,
and nothing in it runs. PyTorch's own message then explains how to load it
anyway, unsafely; the book never repeats that advice. :func:`load_failure`
says instead what the file is and where a good copy comes from.
"""

from __future__ import annotations

import pickle
from pathlib import Path


def holds_code(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is torch refusing a pickle of objects."""
    while error is not None:
        if isinstance(error, pickle.UnpicklingError):
            return True
        error = error.__cause__  # type: ignore[assignment]
    return False


def load_failure(path: str | Path, error: BaseException, remedy: str) -> str:
    """One line on why ``path`` did not load: ``error``'s own message, or, for a
    file of pickled objects, that it is not plain weights (never torch's advice)."""
    if holds_code(error):
        return (
            f"{str(path)!r} is not plain weights: it holds pickled Python objects, "
            "which only code could rebuild, so it was not loaded and nothing in it ran; "
            "rlbook never writes such a file, so it did not come from this book's "
            f"training or export. {remedy}"
        )
    return " ".join(str(error).split())
