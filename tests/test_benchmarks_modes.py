"""The projects' ``benchmarks/*_modes.py`` scripts: a compiled mode compiles
what its timed step runs."""

import inspect
import sys
from dataclasses import asdict
from types import SimpleNamespace

import pytest
import torch

from rlbook.chapters.vae_mnist import VAEConfig

from .scripts import ROOT, load_script

sys.path.insert(0, str(ROOT / "benchmarks"))  # the scripts import harness
harness = load_script("benchmarks/harness.py")
vae_modes = load_script("benchmarks/vae_modes.py")


def test_the_vaes_compiled_mode_compiles_what_its_timed_epoch_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Its first table showed no compile cost at all: encoder.compile() (which
    # in torch 2.13 compiles Module._call_impl, a frame Dynamo skips) had
    # compiled nothing, and the "torch.compile" row timed eager code.
    images = torch.randint(
        0, 256, (300, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator()
    )
    monkeypatch.setattr(
        vae_modes, "load_mnist", lambda split: SimpleNamespace(images=images)
    )
    config = asdict(VAEConfig(hidden=(16,), latent=2, batch_size=100))
    runner = vae_modes.train_mode("torch.compile", config, 0)
    assert (runner.compiled["graphs"], runner.compiled["graph_breaks"]) == (2, 0)
    before = harness.dynamo_graphs()
    runner.outputs()
    checked = harness.dynamo_graphs()
    runner.step()
    assert before < checked < harness.dynamo_graphs()  # inference, then training
    assert vae_modes.train_mode("eager fp32", config, 0).compiled is None


@pytest.mark.parametrize("project", ["dqn_port", "resnet", "sentiment", "vae"])
def test_aoti_python_and_aoti_cpp_run_the_package_with_the_same_input_checks(
    project: str,
) -> None:
    # The C++ runner once checked every call's inputs while the Python mode
    # did not (AOTI_RUNTIME_CHECK_INPUTS=1 against check_inputs=False).
    source = (ROOT / "benchmarks" / f"{project}_modes.py").read_text()
    setting = "load_aoti(package, check_inputs=harness.TIMING_CHECK_INPUTS)"
    assert source.count("load_aoti(") == source.count(setting) == 1
    default = inspect.signature(harness.CppRunner).parameters["check_inputs"].default
    assert default is harness.TIMING_CHECK_INPUTS
