"""One plotting theme for the whole book, and animations that fit in a page.
Introduced in the chapter *How to run this book*."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

PALETTE = "colorblind"


def set_theme() -> None:
    """Apply the book's seaborn theme (call once at the top of a chapter)."""
    import matplotlib as mpl
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)
    mpl.rcParams.update(
        {
            "figure.figsize": (7.0, 4.0),
            "figure.dpi": 100,
            "savefig.bbox": "tight",
            "axes.titleweight": "bold",
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )


def smooth(values: Sequence[float] | np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average, as long as ``values``; the first ``window - 1``
    points average what exists."""
    x = np.asarray(values, dtype=np.float64)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if x.size == 0:
        return x
    cumulative = np.cumsum(np.insert(x, 0, 0.0))
    ends = np.arange(1, x.size + 1)
    starts = np.maximum(0, ends - window)
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)


_CDN_STYLESHEET = re.compile(r'<link rel="stylesheet"\s+href="https?://[^"]*"\s*/?>\s*')

DEFAULT_MAX_BYTES = 4_000_000
"""Largest embedded animation, in bytes of HTML (about 4 MB)."""


def _resize(frame: np.ndarray, max_width: int) -> np.ndarray:
    import cv2

    height, width = frame.shape[:2]
    if width <= max_width:
        return frame
    new_height = max(1, round(height * max_width / width))
    return cv2.resize(frame, (max_width, new_height), interpolation=cv2.INTER_AREA)


def animation_html(
    frames: Sequence[np.ndarray],
    *,
    fps: int = 30,
    max_width: int = 320,
    max_frames: int = 150,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> str:
    """Matplotlib's HTML5 player of uint8 RGB ``frames``, at most ``max_bytes``:
    frames shrink to ``max_width``; past ``max_frames`` every k-th is kept, played
    k times slower; past ``max_bytes`` they are thinned further rather than let
    matplotlib drop the tail silently."""

    import matplotlib as mpl
    import matplotlib.pyplot as plt
    from matplotlib import animation

    if len(frames) == 0:
        raise ValueError("no frames to animate")
    stride = max(1, int(np.ceil(len(frames) / max_frames)))
    small = [_resize(np.asarray(frame), max_width) for frame in frames]
    while True:
        kept = small[::stride]
        height, width = kept[0].shape[:2]
        dpi = 100
        fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
        ax.set_axis_off()
        image = ax.imshow(kept[0])

        def draw(index: int, image=image, kept=kept) -> tuple:
            image.set_data(kept[index])
            return (image,)

        anim = animation.FuncAnimation(
            fig, draw, frames=len(kept), interval=1000 * stride / fps, blit=True
        )
        # Give matplotlib more room than we allow, so it never truncates; we check.
        with mpl.rc_context({"animation.embed_limit": 2 * max_bytes / 2**20}):
            html = anim.to_jshtml(default_mode="loop")
        # matplotlib links Font Awesome from a CDN for the player's buttons; the
        # book's theme ships the icons, and a page must load nothing from outside.
        html = _CDN_STYLESHEET.sub("", html)
        plt.close(fig)
        if len(html.encode()) <= max_bytes or len(kept) == 1:
            break
        stride *= 2
    if len(html.encode()) > max_bytes:
        raise ValueError(
            f"a single frame exceeds max_bytes={max_bytes}; lower max_width"
        )
    return html


def animate(frames: Sequence[np.ndarray], **kwargs: object):  # -> IPython.display.HTML
    """Display ``frames`` as an embedded player; see :func:`animation_html`."""
    from IPython.display import HTML

    return HTML(animation_html(frames, **kwargs))  # type: ignore[arg-type]
