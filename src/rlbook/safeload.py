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

REFUSED = "Weights only load failed"
"""How torch's message begins when ``weights_only=True`` refuses a file: for
pickled objects and for damaged bytes alike, followed by advice to load it
unsafely."""


def refusal(error: BaseException | None) -> BaseException | None:
    """torch's refusal among ``error`` and its causes, or None."""
    while error is not None:
        if isinstance(error, pickle.UnpicklingError) and REFUSED in str(error):
            return error
        error = error.__cause__
    return None


def holds_code(error: BaseException) -> bool:
    """Whether ``error`` is torch refusing a file because of the objects it pickles."""
    refused = refusal(error)
    return refused is not None and "Unsupported global" in str(refused)


def load_failure(path: str | Path, error: BaseException, remedy: str) -> str:
    """One line on why ``path`` did not load: ``error``'s own message, or, where
    torch refused the file, what it is (never torch's advice to load it anyway)."""
    if holds_code(error):
        return (
            f"{str(path)!r} is not plain weights: it holds pickled Python objects, "
            "which only code could rebuild, so it was not loaded and nothing in it ran; "
            "rlbook never writes such a file, so it did not come from this book's "
            f"training or export. {remedy}"
        )
    if refusal(error) is not None:
        return (
            f"{str(path)!r} is corrupt or not a weights file: it does not read as "
            f"tensors and plain values, so it was not loaded. {remedy}"
        )
    return " ".join(str(error).split())
