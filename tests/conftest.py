"""Shared fixtures: a tiny trained-looking tabular agent folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("MPLBACKEND", "Agg")

from rlbook.agents import save_agent
from rlbook.chapters.tabular_cartpole import Discretizer
from rlbook.checkpoint import make_provenance

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"
)
"""Marks a test (or a ``pytest.param``) that needs a CUDA GPU; defined once here."""

CARTPOLE_DISCRETIZER = Discretizer.uniform(
    [-2.4, -3.0, -0.21, -3.5], [2.4, 3.0, 0.21, 3.5], 8
)


def hand_made_cartpole_table() -> np.ndarray:
    """A Q-table whose greedy policy pushes towards the side the pole falls to.

    Action 1 (right) wherever theta + theta_dot points right; scores ~200 on CartPole.
    """
    d = CARTPOLE_DISCRETIZER
    rows = np.arange(d.n_states)
    theta_bucket = (rows // 64) % 8
    omega_bucket = rows // 512
    right = (theta_bucket - 3.5) + 2 * (omega_bucket - 3.5) > 0
    return np.stack([~right, right], axis=1).astype(np.float64)


@pytest.fixture
def tabular_agent_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "agent"
    save_agent(
        folder,
        kind="q-table",
        env_id="CartPole-v1",
        spec={"discretizer": CARTPOLE_DISCRETIZER.to_dict()},
        weights={"q_table": torch.from_numpy(hand_made_cartpole_table())},
        provenance=make_provenance(
            command="pytest", config={}, budget="smoke", device="cpu", wall_time_s=0.0
        ),
    )
    return folder


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data``: the real dataset subsets CI provides (skipped elsewhere)."""
    from rlbook.paths import repo_root

    folder = repo_root().parent / "shared" / "data"
    if not folder.is_dir():
        if os.environ.get("CI"):
            pytest.fail("CI must have ../shared/data")
        pytest.skip("no ../shared/data beside the repository")
    return folder


@pytest.fixture
def one_torch_thread():
    """Tiny networks: a second intra-op thread only adds waiting on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
