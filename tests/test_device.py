import pytest
import torch

from rlbook.device import DeviceError, device_banner, select_device

from .conftest import needs_cuda

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@pytest.fixture(autouse=True)
def no_device_variable(monkeypatch):
    """Tests start with $RLBOOK_DEVICE unset, whatever the shell running them set."""
    monkeypatch.delenv("RLBOOK_DEVICE", raising=False)


@pytest.fixture
def fake_cuda(monkeypatch):
    """Pretend torch sees one CUDA GPU (select_device only asks, never allocates)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_cpu_override():
    assert select_device("cpu") == torch.device("cpu")


def test_environment_override(monkeypatch):
    monkeypatch.setenv("RLBOOK_DEVICE", "cpu")
    assert select_device() == torch.device("cpu")


def test_unknown_override_is_a_clear_error():
    with pytest.raises(
        DeviceError, match=r"unknown device 'tpu'.*auto, cuda, mps, cpu"
    ):
        select_device("tpu")


@no_cuda
def test_auto_without_cuda_falls_back(monkeypatch):
    monkeypatch.delenv("RLBOOK_DEVICE", raising=False)
    expected = "mps" if torch.backends.mps.is_available() else "cpu"
    assert select_device().type == expected


@no_cuda
def test_asking_for_missing_cuda_is_an_error():
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        select_device("cuda")


@needs_cuda
def test_auto_prefers_cuda(monkeypatch):
    monkeypatch.delenv("RLBOOK_DEVICE", raising=False)
    assert select_device().type == "cuda"


@needs_cuda
def test_cuda_banner_names_the_gpu():
    device = torch.device("cuda")
    assert torch.cuda.get_device_name(0) in device_banner(device)


def test_cpu_banner_is_one_line():
    banner = device_banner(torch.device("cpu"))
    assert banner.startswith("device: cpu (") and "\n" not in banner
    assert torch.__version__ in banner


@pytest.mark.parametrize("default", ["cuda", "auto", "cpu"])
def test_environment_variable_wins_over_the_default(monkeypatch, fake_cuda, default):
    monkeypatch.setenv("RLBOOK_DEVICE", "cpu")
    assert select_device(default) == torch.device("cpu")
    monkeypatch.setenv("RLBOOK_DEVICE", " CUDA ")
    assert select_device(default) == torch.device("cuda")


@pytest.mark.parametrize("unset", [None, "", "  "])
def test_unset_or_empty_variable_leaves_the_default(monkeypatch, fake_cuda, unset):
    if unset is not None:
        monkeypatch.setenv("RLBOOK_DEVICE", unset)
    assert select_device("cpu") == torch.device("cpu")  # not auto's choice, cuda
    assert select_device("cuda") == torch.device("cuda")
    assert select_device() == torch.device("cuda")  # the default default is auto


def test_positional_cpu_still_works_as_chapters_call_it(fake_cuda):
    assert select_device("cpu").type == "cpu"


def test_unknown_name_in_the_variable_says_where_it_came_from(monkeypatch):
    monkeypatch.setenv("RLBOOK_DEVICE", "tpu")
    with pytest.raises(
        DeviceError, match=r"unknown device 'tpu' from \$RLBOOK_DEVICE.*auto, cuda"
    ):
        select_device("cpu")


@pytest.mark.parametrize("bad", ["cuda:x", "auto:0", "gpu"])
def test_malformed_names_are_unknown(bad):
    with pytest.raises(DeviceError, match="unknown device"):
        select_device(bad)


def test_default_that_is_not_a_name_is_a_clear_error():
    with pytest.raises(DeviceError, match="device name"):
        select_device(None)  # type: ignore[arg-type]


@no_cuda
def test_missing_cuda_from_the_variable_says_how_to_fix_it(monkeypatch):
    monkeypatch.setenv("RLBOOK_DEVICE", "cuda")
    with pytest.raises(
        DeviceError,
        match=r"asked for by \$RLBOOK_DEVICE, but torch sees no CUDA GPU.*unset RLBOOK_DEVICE",
    ):
        select_device("cpu")


@no_cuda
def test_missing_cuda_from_the_argument_says_how_to_fix_it():
    with pytest.raises(DeviceError, match=r"argument.*no CUDA GPU.*RLBOOK_DEVICE=cpu"):
        select_device("cuda")


def test_gpu_index_beyond_the_machine_is_an_error(fake_cuda):
    assert select_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(DeviceError, match=r"'cuda:3'.*has 1 CUDA GPU"):
        select_device("cuda:3")
