import pytest
import torch

from rlbook.device import DeviceError, device_banner, select_device

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"
)
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


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
