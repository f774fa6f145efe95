import re

import numpy as np
import pytest

from rlbook.plotting import animation_html, smooth


def test_smooth_is_a_trailing_mean():
    np.testing.assert_allclose(smooth([1, 2, 3, 4], 2), [1.0, 1.5, 2.5, 3.5])


def test_smooth_keeps_length_and_rejects_bad_window():
    assert smooth(np.arange(10), 100).shape == (10,)
    with pytest.raises(ValueError):
        smooth([1.0], 0)


def frames(count, size=(400, 600)):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (*size, 3), dtype=np.uint8) for _ in range(count)]


def frame_count(html: str) -> int:
    return len(re.findall(r"frames\[\d+\] = ", html))


def test_animation_downsamples_to_max_frames():
    html = animation_html(frames(40, (40, 60)), max_frames=10)
    assert frame_count(html) == 10


def test_animation_fits_in_max_bytes_by_thinning_frames():
    # noise compresses badly: 30 frames of 120x80 noise exceed 200 kB, so frames are thinned
    html = animation_html(frames(30, (80, 120)), max_width=120, max_bytes=200_000)
    assert len(html.encode()) <= 200_000
    assert 1 <= frame_count(html) < 30


def test_animation_of_no_frames_is_an_error():
    with pytest.raises(ValueError, match="no frames"):
        animation_html([])


def test_animation_loads_nothing_from_another_host():
    frames = [np.zeros((8, 8, 3), dtype=np.uint8)] * 2
    html = animation_html(frames)
    assert "<link" not in html and "http://" not in html and "https://" not in html
