"""Shared fixtures: a tiny trained-looking tabular agent folder, tiny Pong runs."""

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


def tiny_pong_configs():
    """``(ReinforceConfig, PPOConfig)`` of the tiny Pong runs the tests train."""
    from rlbook.chapters.pong import ReinforceConfig
    from rlbook.chapters.pong_ppo import PPOConfig

    reinforce = ReinforceConfig(
        games_per_update=2, updates=2, validate_every=2, validation_games=2
    )
    ppo = PPOConfig(
        envs=2,
        steps=32,
        minibatches=2,
        epochs=2,
        total_steps=256,
        validate_every=4,
        validation_games=2,
    )
    return reinforce, ppo


@pytest.fixture(scope="session")
def tiny_reinforce_runs():
    """A tiny REINFORCE run to its end, and the same run's state after update 1:
    trained once for every test of the session that needs them (#28), those of
    the chapter's module and those of its full-run script."""
    import copy

    from rlbook.chapters.pong import Reinforce

    config, _ = tiny_pong_configs()
    straight = Reinforce(config, seed=3)
    straight.train()
    first = Reinforce(config, seed=3)
    first.train(until=1)
    return straight, copy.deepcopy(first.state_dict())


@pytest.fixture
def tiny_reinforce(tiny_reinforce_runs):
    """The shared runs, with a fresh copy of the halfway state for each test: a run
    resumed from it trains its optimizer's tensors in place."""
    import copy

    straight, halfway = tiny_reinforce_runs
    return straight, copy.deepcopy(halfway)


@pytest.fixture(scope="session")
def tiny_ppo():
    """A tiny PPO run to its end, shared by the resume and export tests (#28)."""
    from rlbook.chapters.pong_ppo import PPO

    run = PPO(tiny_pong_configs()[1], seed=1)
    run.train()
    return run


# The C++ programs under deploy/cpp take a while to compile against libtorch.
# When a collected test needs one (the `cpp_program` fixture), the builds start
# as soon as collection ends, in background threads, so the compiler uses the
# machine's other core while the tests before them run.
_CPP_BUILDS: dict = {}
CPP_PROGRAMS = ("aoti_infer", "dqn_train")


def pytest_collection_modifyitems(session, config, items):
    if not any("cpp_program" in getattr(i, "fixturenames", ()) for i in items):
        return
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    from benchmarks.harness import build_cpp_program

    folder = Path(tempfile.mkdtemp(prefix="rlbook-cpp-"))
    pool = ThreadPoolExecutor(max_workers=len(CPP_PROGRAMS))
    for name in CPP_PROGRAMS:
        _CPP_BUILDS[name] = pool.submit(build_cpp_program, name, folder)
    pool.shutdown(wait=False)


@pytest.fixture(scope="session")
def cpp_program():
    """``cpp_program(name)``: the path of ``deploy/cpp/NAME`` built for this session."""

    def built(name: str) -> Path:
        if name not in _CPP_BUILDS:  # collected without the hook (a plugin run)
            import tempfile

            from benchmarks.harness import build_cpp_program

            folder = Path(tempfile.mkdtemp(prefix="rlbook-cpp-"))
            return build_cpp_program(name, folder)
        return _CPP_BUILDS[name].result()

    return built
