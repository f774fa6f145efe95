"""Deployment without Python: AOTInductor packages, a C++ runner, and fair timing.

The compiled deployment path of the *PyTorch projects* part, for any
``nn.Module`` whose inputs are tensors with the batch first:

1. :func:`export_aoti` traces the model with ``torch.export`` (a dynamic batch
   dimension on every input) and compiles it ahead of time with AOTInductor into
   one ``.pt2`` package: generated C++ kernels, built into a shared library,
   with the weights inside. :func:`load_aoti` runs that package from Python.
2. :func:`build_cpp_runner` compiles ``deploy/cpp/aoti_infer.cpp``, a small
   C++ program, with the system C++ compiler against the libtorch that ships
   inside the installed torch wheel. The program loads the package and runs it
   with no Python in the process.
3. :func:`time_python` and :func:`time_cpp` time a call the same way on both
   sides (warm-up calls, then timed calls, the same intra-op thread count, the
   same statistics); :func:`peak_memory_mb` and :func:`run_in_subprocess`
   measure each mode's memory in a process of its own; :func:`write_comparison`
   writes the table of modes as ``artifacts/projects/<project>/comparison.json``.

Tensors cross the language boundary as files in one small format that both
sides read and write (:func:`save_tensor`, :func:`load_tensor`)::

    rlbook-tensor v1 <dtype> <ndim> <size_0> ... <size_ndim-1>\\n
    <numel * itemsize bytes: the values in C order, little-endian>

with ``<dtype>`` one of the names in :data:`DTYPE_NAMES`. A folder of model
inputs holds ``input_0.tensor``, ``input_1.tensor``, ... in argument order; the
runner writes ``output_0.tensor``, ... the same way.

Two things a compiled package fixes at compile time: the CPU instruction set
(Inductor compiles with ``-march=native``, so a package built on an AVX-512
machine may not run on an older CPU; the package's metadata names the ISA), and,
unless told otherwise, nothing about threads: :func:`export_aoti` compiles
kernels that use as many OpenMP threads as the caller pins at run time (with
``threads=None``), so Python and C++ can be compared at any thread count.

Used by the four projects' benchmarks (``benchmarks/*_modes.py``), whose
tables the projects' chapters show.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import multiprocessing
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint import atomic_write, git_commit
from ..paths import artifacts_dir, repo_root

__all__ = [
    "DTYPE_NAMES",
    "AOTIModel",
    "ComparisonRecord",
    "DeployError",
    "benchmark_meta",
    "build_cpp_runner",
    "comparison_path",
    "compile_aoti",
    "cpp_build_flags",
    "export_aoti",
    "find_cxx",
    "latency_records",
    "latency_stats",
    "load_aoti",
    "load_comparison",
    "load_tensor",
    "peak_memory_mb",
    "read_inputs",
    "read_outputs",
    "run_in_subprocess",
    "save_tensor",
    "software_versions",
    "time_cpp",
    "time_cpp_batches",
    "time_python",
    "write_comparison",
    "write_inputs",
]


class DeployError(RuntimeError):
    """A model that cannot be exported, compiled, built against, loaded or run."""


# ---------------------------------------------------------------- tensor files

TENSOR_MAGIC = "rlbook-tensor"
TENSOR_VERSION = "v1"
MAX_HEADER_BYTES = 4096  # the same limit as the C++ reader's

DTYPE_NAMES: dict[torch.dtype, str] = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.int64: "int64",
    torch.int32: "int32",
    torch.int16: "int16",
    torch.int8: "int8",
    torch.uint8: "uint8",
    torch.bool: "bool",
}
"""The dtypes a tensor file may hold, with their names in the header."""

DTYPES_BY_NAME = {name: dtype for dtype, name in DTYPE_NAMES.items()}


def _dtype_name(dtype: torch.dtype) -> str:
    try:
        return DTYPE_NAMES[dtype]
    except KeyError:
        raise DeployError(
            f"tensors of dtype {dtype} cannot cross to C++; the tensor format holds "
            f"{', '.join(DTYPE_NAMES.values())}: convert the tensor first"
        ) from None


def _check_little_endian() -> None:
    if sys.byteorder != "little":
        raise DeployError("tensor files are little-endian; this machine is big-endian")


def save_tensor(tensor: torch.Tensor, path: str | Path) -> Path:
    """Write one tensor in the format the C++ runner reads (atomically).

    The tensor is copied to the CPU and made contiguous; its dtype must be one of
    :data:`DTYPE_NAMES`.
    """
    _check_little_endian()
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(tensor).__name__}")
    path = Path(path)
    name = _dtype_name(tensor.dtype)
    values = tensor.detach().to("cpu").contiguous()
    header = " ".join(
        [TENSOR_MAGIC, TENSOR_VERSION, name, str(values.dim())]
        + [str(size) for size in values.shape]
    )
    payload = values.reshape(-1).view(torch.uint8).numpy().tobytes()

    def write(handle: Any) -> None:
        handle.write(header.encode("ascii") + b"\n")
        handle.write(payload)

    atomic_write(path, write)
    return path


def load_tensor(path: str | Path) -> torch.Tensor:
    """Read one tensor written by :func:`save_tensor` or the C++ runner.

    Raises:
        DeployError: if the file is missing, its header is not the format's, or
            it holds fewer or more bytes than its dtype and shape say.
    """
    _check_little_endian()
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DeployError(f"tensor file {str(path)!r} does not exist") from None
    end = data.find(b"\n", 0, MAX_HEADER_BYTES + 1)
    expected = f"'{TENSOR_MAGIC} {TENSOR_VERSION} DTYPE NDIM SIZES...'"
    if end < 0:
        raise DeployError(
            f"{str(path)!r} is not a tensor file: no header line {expected}; "
            "write it with save_tensor"
        )
    header = data[:end].decode("ascii", errors="replace")
    fields = header.split()
    try:
        if fields[:2] != [TENSOR_MAGIC, TENSOR_VERSION]:
            raise ValueError("wrong magic")
        dtype_name, ndim = fields[2], int(fields[3])
        shape = [int(size) for size in fields[4:]]
        if len(shape) != ndim or any(size < 0 for size in shape):
            raise ValueError("bad shape")
    except (IndexError, ValueError):
        raise DeployError(
            f"{str(path)!r} has a bad header {header!r}; expected {expected}"
        ) from None
    if dtype_name not in DTYPES_BY_NAME:
        raise DeployError(
            f"{str(path)!r} holds unsupported dtype {dtype_name!r}; supported: "
            f"{', '.join(DTYPE_NAMES.values())}"
        )
    dtype = DTYPES_BY_NAME[dtype_name]
    numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
    nbytes = numel * torch.empty((), dtype=dtype).element_size()
    payload = data[end + 1 :]
    if len(payload) != nbytes:
        problem = "truncated" if len(payload) < nbytes else "corrupt (too long)"
        raise DeployError(
            f"{str(path)!r} is {problem}: its header promises {nbytes} bytes of "
            f"{dtype_name} {shape}, the file holds {len(payload)}; write it again"
        )
    if nbytes == 0:
        return torch.empty(shape, dtype=dtype)
    flat = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
    return flat.view(dtype).reshape(shape)


def _as_tensors(inputs: torch.Tensor | Sequence[torch.Tensor], what: str) -> list:
    items = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
    for index, item in enumerate(items):
        if not isinstance(item, torch.Tensor):
            raise TypeError(
                f"{what} must be tensors; item {index} is a {type(item).__name__}"
            )
    return items


def _write_numbered(tensors: list[torch.Tensor], folder: Path, stem: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [
        save_tensor(t, folder / f"{stem}_{i}.tensor") for i, t in enumerate(tensors)
    ]
    # Files of an earlier, longer list would be read as part of this one.
    index = len(tensors)
    while (stale := folder / f"{stem}_{index}.tensor").exists():
        stale.unlink()
        index += 1
    return paths


def _read_numbered(folder: Path, stem: str) -> list[torch.Tensor]:
    if not folder.is_dir():
        raise DeployError(f"folder {str(folder)!r} does not exist")
    tensors = []
    while (path := folder / f"{stem}_{len(tensors)}.tensor").exists():
        tensors.append(load_tensor(path))
    if not tensors:
        raise DeployError(f"no {stem}_0.tensor in {str(folder)!r}")
    return tensors


def write_inputs(
    inputs: torch.Tensor | Sequence[torch.Tensor], folder: str | Path
) -> list[Path]:
    """Write a model's positional inputs as ``folder/input_<i>.tensor`` for the runner.

    Removes ``input_<i>.tensor`` files of an earlier, longer input list.
    """
    return _write_numbered(_as_tensors(inputs, "inputs"), Path(folder), "input")


def read_inputs(folder: str | Path) -> list[torch.Tensor]:
    """The tensors :func:`write_inputs` wrote, in order."""
    return _read_numbered(Path(folder), "input")


def read_outputs(folder: str | Path) -> list[torch.Tensor]:
    """The outputs the C++ runner wrote with ``--out folder``, in order."""
    return _read_numbered(Path(folder), "output")


# ---------------------------------------------------------------- export and compile

CHECK_INPUTS_ENV = "AOTI_RUNTIME_CHECK_INPUTS"
"""Set to 1, the compiled code checks every call's input dtypes and shapes."""
SUMMARY_LINES = 3  # lines of a torch error quoted in ours
COMPILER_LINES = 25  # lines of a failed build's output quoted in the error


def _summary(error: BaseException, lines: int = SUMMARY_LINES) -> str:
    text = "\n".join(str(error).strip().splitlines()[:lines])
    return f"{type(error).__name__}: {text or 'no detail'}"


@contextlib.contextmanager
def _quiet_torch_warnings() -> Iterator[None]:
    """Hide torch's own deprecation notices: a reader cannot act on them, and a
    notebook cell that writes to stderr fails the book's build."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _program_signature(program: torch.export.ExportedProgram) -> tuple[str, int]:
    """``("float32[batch,8] int64[batch,6]", max_batch)`` of a program's inputs.

    A symbolic first dimension is ``batch``, any other symbolic one ``any``;
    ``max_batch`` is the batch's upper bound, 0 where it has none.
    """
    user_inputs = set(program.graph_signature.user_inputs)
    specs, max_batch = [], 0
    for node in program.graph.nodes:
        if node.op != "placeholder" or node.name not in user_inputs:
            continue
        value = node.meta.get("val")
        if not isinstance(value, torch.Tensor):
            raise DeployError(
                f"input {node.name!r} is a {type(value).__name__}, not a tensor; the "
                "compiled path takes tensor inputs only: make it a tensor or a "
                "constant of the model"
            )
        dims = []
        for axis, size in enumerate(value.shape):
            if isinstance(size, int):
                dims.append(str(size))
            elif axis == 0:
                dims.append("batch")
                bounds = program.range_constraints.get(size.node.expr)
                upper = str(bounds.upper) if bounds is not None else ""
                max_batch = int(upper) if upper.isdigit() else 0
            else:
                dims.append("any")
        specs.append(f"{_dtype_name(value.dtype)}[{','.join(dims)}]")
    return " ".join(specs), max_batch


def compile_aoti(
    program: torch.export.ExportedProgram,
    package_path: str | Path,
    *,
    threads: int | None = None,
    model_name: str = "",
) -> Path:
    """AOTInductor-compile an exported program into one ``.pt2`` package (atomically).

    Args:
        program: from ``torch.export.export``; its inputs must be tensors.
        package_path: the ``.pt2`` file to write.
        threads: ``None`` compiles kernels that use as many OpenMP threads as
            the caller pins when it runs them (``torch.set_num_threads`` in
            Python, ``--threads`` for the C++ runner); an int fixes that many
            in the generated code, whatever the caller asks for (Inductor's
            default is the thread count at compile time, a trap when comparing
            thread counts).
        model_name: recorded in the package's metadata, and printed by the runner.

    The package's metadata (``loader.get_metadata()`` in C++, ``.metadata`` of
    :func:`load_aoti`'s model) records ``rlbook.inputs`` (the input signature,
    e.g. ``float32[batch,8] int64[batch,6]``), ``rlbook.max_batch``,
    ``rlbook.model``, ``rlbook.threads`` and ``rlbook.torch``.

    Raises:
        DeployError: if AOTInductor cannot compile the program (for instance no
            C++ compiler: Inductor needs one too).
    """
    from torch._inductor import aoti_compile_and_package

    path = Path(package_path)
    if path.suffix != ".pt2":
        raise ValueError(
            f"package_path must end in .pt2 (torch loads only those), got {path}"
        )
    if threads is not None and (isinstance(threads, bool) or threads < 1):
        raise ValueError(f"threads must be None or a positive int, got {threads!r}")
    signature, max_batch = _program_signature(program)
    metadata = {
        "rlbook.inputs": signature,
        "rlbook.max_batch": str(max_batch),
        "rlbook.model": model_name,
        "rlbook.threads": "dynamic" if threads is None else str(threads),
        "rlbook.torch": torch.__version__,
    }
    configs: dict[str, Any] = {
        # Batch 1 is in range: export refines a dynamic size's lower bound to 2,
        # which the package would otherwise enforce when inputs are checked.
        "aot_inductor.check_lowerbound": False,
        "aot_inductor.metadata": metadata,
    }
    if threads is None:
        configs["cpp.dynamic_threads"] = True
    else:
        configs["cpp.threads"] = threads
    buffer = io.BytesIO()
    try:
        with _quiet_torch_warnings():
            aoti_compile_and_package(
                program, package_path=buffer, inductor_configs=configs
            )
    except Exception as error:  # Inductor raises many types
        raise DeployError(
            f"AOTInductor could not compile {model_name or 'the program'} "
            f"({_summary(error)}); it needs a working C++ compiler (set CXX) and "
            "an exported program that runs eagerly"
        ) from error
    atomic_write(path, lambda handle: handle.write(buffer.getbuffer()))
    return path


def export_aoti(
    model: nn.Module,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    package_path: str | Path,
    *,
    dynamic_batch: bool = True,
    max_batch: int = 1024,
    threads: int | None = None,
) -> Path:
    """``torch.export`` a model in eval mode and compile it into a ``.pt2`` package.

    Args:
        model: any module whose ``forward`` takes tensors, batch first; exported
            in eval mode (each submodule's mode is restored afterwards).
        example_inputs: one tensor per positional input, e.g. ``(images,)``
            with images ``(B, 3, 32, 32)``; with ``dynamic_batch`` every input's
            first dimension is the batch, and ``B`` must be at least 2
            (``torch.export`` fixes a dimension of size 1). Make the example
            batch a typical large one, not 2: Inductor may specialise a kernel
            on which side of a threshold the example falls, and the package
            then refuses batches on the other side (with torch 2.13, a
            convolution traced with a batch of 2 gives a package that takes
            at most 15; traced with 64, it takes 1 to ``max_batch``).
        package_path: the ``.pt2`` file to write (atomically: compiled in
            memory, then renamed into place).
        dynamic_batch: one package for every batch size from 1 to ``max_batch``;
            ``False`` fixes the example's shapes.
        max_batch: the largest batch the package accepts.
        threads: see :func:`compile_aoti`.

    Returns:
        ``package_path``.

    Raises:
        DeployError: if the inputs have no common batch dimension, or if
            ``torch.export`` cannot trace the model (the message names its class)
            or AOTInductor cannot compile it.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    inputs = tuple(_as_tensors(example_inputs, "example_inputs"))
    name = type(model).__name__
    if not inputs:
        raise ValueError(f"give {name} at least one example input")
    dynamic_shapes = None
    if dynamic_batch:
        if isinstance(max_batch, bool) or max_batch < 2:
            raise ValueError(f"max_batch must be an int >= 2, got {max_batch!r}")
        if any(t.dim() == 0 for t in inputs):
            raise DeployError(
                f"an example input of {name} is a 0-d tensor, with no batch dimension; "
                "pass dynamic_batch=False to fix every shape"
            )
        batches = [t.shape[0] for t in inputs]
        if len(set(batches)) > 1:
            raise DeployError(
                f"the example inputs of {name} disagree on the batch size (their first "
                f"dimensions are {batches}); every input must have the batch first, "
                "or pass dynamic_batch=False"
            )
        if not 2 <= batches[0] <= max_batch:
            raise DeployError(
                f"the example batch of {name} is {batches[0]}; it must be between 2 and "
                f"max_batch={max_batch} (torch.export fixes a dimension of size 1 "
                "instead of making it dynamic): repeat the example to batch 2"
            )
        batch = torch.export.Dim("batch", min=1, max=max_batch)
        dynamic_shapes = tuple({0: batch} for _ in inputs)
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with _quiet_torch_warnings():
            program = torch.export.export(model, inputs, dynamic_shapes=dynamic_shapes)
    except Exception as error:  # torch.export raises many types
        raise DeployError(
            f"torch.export could not trace {name} ({_summary(error)}); the model's "
            "forward must take the example tensors and run without Python-side "
            "effects that depend on their values"
        ) from error
    finally:
        for module, training in modes.items():
            module.training = training
    return compile_aoti(program, package_path, threads=threads, model_name=name)


def _describe(tensors: Sequence[Any]) -> str:
    parts = []
    for item in tensors:
        if isinstance(item, torch.Tensor):
            name = DTYPE_NAMES.get(item.dtype, str(item.dtype))
            parts.append(f"{name}{list(item.shape)}")
        else:
            parts.append(type(item).__name__)
    return " ".join(parts) or "no inputs"


class AOTIModel:
    """A compiled ``.pt2`` package loaded into this Python process.

    Call it like the model it was exported from. Inputs that do not fit the
    package (dtype, shape, count) raise :class:`DeployError` naming what it
    expects; the check happens in the compiled code, a few comparisons a call.
    """

    path: Path
    """The package file."""
    compiled: Any
    """The loaded package itself, callable, without the error translation."""
    metadata: dict[str, str]
    """What the package records: AOTI's keys and ``rlbook.*`` (see :func:`compile_aoti`)."""

    def __init__(self, path: Path, compiled: Any) -> None:
        self.path = path
        self.compiled = compiled
        self.metadata = dict(compiled.get_metadata())

    @property
    def signature(self) -> str:
        """The inputs the package takes, e.g. ``float32[batch,8] int64[batch,6]``."""
        return self.metadata.get(
            "rlbook.inputs", "unknown (not written by export_aoti)"
        )

    def __call__(self, *inputs: torch.Tensor) -> Any:
        try:
            return self.compiled(*inputs)
        except (RuntimeError, ValueError, TypeError) as error:
            raise DeployError(
                f"package {self.path.name!r} rejected its inputs ({_describe(inputs)}); "
                f"it takes {self.signature} with 1 <= batch <= "
                f"{self.metadata.get('rlbook.max_batch', '?')} ({_summary(error, 1)})"
            ) from error

    def __repr__(self) -> str:
        return f"AOTIModel({str(self.path)!r}, inputs={self.signature!r})"


def load_aoti(package_path: str | Path, *, check_inputs: bool = True) -> AOTIModel:
    """Load a package written by :func:`export_aoti` to run from Python.

    Args:
        package_path: the ``.pt2`` file.
        check_inputs: have the compiled code check every call's inputs, by
            setting the environment variable ``AOTI_RUNTIME_CHECK_INPUTS=1``
            for this process unless it is set already (the C++ runner does the
            same, so both sides pay the same few comparisons). Without the
            check, a wrong dtype or shape gives wrong numbers or a crash.

    Raises:
        DeployError: if the file is missing, is not a package (corrupt or
            truncated), or cannot be loaded (e.g. compiled by another torch).
    """
    from torch._inductor import aoti_load_package

    path = Path(package_path)
    if not path.is_file():
        raise DeployError(
            f"package {str(path)!r} does not exist; export it with export_aoti first"
        )
    if not zipfile.is_zipfile(path):
        raise DeployError(
            f"package {str(path)!r} is not a .pt2 archive (corrupt or truncated); "
            "delete it and export it again with export_aoti"
        )
    if check_inputs:
        os.environ.setdefault(CHECK_INPUTS_ENV, "1")
    try:
        with _quiet_torch_warnings():
            compiled = aoti_load_package(str(path))
    except Exception as error:  # torch raises several types for bad packages
        raise DeployError(
            f"cannot load package {str(path)!r} ({_summary(error)}); export it again "
            f"with this torch ({torch.__version__}) on this machine"
        ) from error
    return AOTIModel(path, compiled)


# ---------------------------------------------------------------- the C++ runner

RUNNER_SOURCE = Path("deploy") / "cpp" / "aoti_infer.cpp"
"""The runner's source, relative to the repository root."""
RUNNER_NAME = "aoti_infer"
COMPILER_CANDIDATES = ("c++", "g++", "clang++")


def find_cxx(compiler: str | None = None) -> list[str]:
    """The C++ compiler command: ``compiler``, else ``$CXX``, else c++, g++, clang++.

    Returns a list because ``$CXX`` may carry words (``"ccache g++"``).

    Raises:
        DeployError: if the chosen compiler, or any, cannot be found.
    """
    chosen, origin = compiler, "asked for"
    if chosen is None and os.environ.get("CXX", "").strip():
        chosen, origin = os.environ["CXX"], "named by $CXX"
    if chosen is not None:
        words = shlex.split(chosen)
        found = shutil.which(words[0]) if words else None
        if found is None:
            raise DeployError(
                f"C++ compiler {chosen!r} ({origin}) was not found; install g++ or "
                "clang++, or set CXX to the path of a C++20 compiler"
            )
        return [found, *words[1:]]
    for name in COMPILER_CANDIDATES:
        found = shutil.which(name)
        if found is not None:
            return [found]
    raise DeployError(
        f"no C++ compiler found (looked for $CXX, {', '.join(COMPILER_CANDIDATES)}); "
        "install one (Debian/Ubuntu: apt-get install g++; macOS: xcode-select "
        "--install) or set CXX to a C++20 compiler's path"
    )


def cpp_build_flags() -> list[str]:
    """Compiler flags that build a program against the libtorch inside the torch wheel.

    Headers come in as ``-isystem`` so that their own warnings stay quiet; the
    ``_GLIBCXX_USE_CXX11_ABI`` value is the wheel's (a mismatch fails at link
    time with undefined ``std::string`` symbols); ``-rpath`` lets the program find
    ``libtorch*.so`` without ``LD_LIBRARY_PATH``. Put them after the source file.
    """
    root = Path(torch.__file__).resolve().parent
    include, lib = root / "include", root / "lib"
    loader = include / "torch" / "csrc" / "inductor" / "aoti_package"
    if not (loader / "model_package_loader.h").is_file():
        raise DeployError(
            f"this torch install ({root}) has no C++ headers; install the torch wheel "
            "from PyPI, which ships them in torch/include"
        )
    return [
        "-std=c++20",
        "-O2",
        "-isystem",
        str(include),
        "-isystem",
        str(include / "torch" / "csrc" / "api" / "include"),
        f"-D_GLIBCXX_USE_CXX11_ABI={int(torch.compiled_with_cxx11_abi())}",
        f"-L{lib}",
        f"-Wl,-rpath,{lib}",
        "-ltorch",
        "-ltorch_cpu",
        "-lc10",
    ]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def build_cpp_runner(out_dir: str | Path, *, compiler: str | None = None) -> Path:
    """Compile ``deploy/cpp/aoti_infer.cpp`` into ``out_dir/aoti_infer``.

    Skips the build when the binary is newer than the source and was built from
    the same source with the same compiler and flags (recorded beside it in
    ``aoti_infer.build.json``). The compiler's warnings are not shown: a notebook
    cell that writes to stderr fails the book's build.

    Args:
        out_dir: where the binary goes (created if missing).
        compiler: the compiler command; default ``$CXX``, else c++, g++, clang++.

    Returns:
        The binary's path.

    Raises:
        DeployError: if no compiler is found or the build fails (the message
            quotes the command and the last lines the compiler wrote).
    """
    source = repo_root() / RUNNER_SOURCE
    if not source.is_file():
        raise DeployError(f"the runner's source {str(source)!r} is missing")
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    binary = folder / RUNNER_NAME
    stamp_path = folder / f"{RUNNER_NAME}.build.json"
    cxx, flags = find_cxx(compiler), cpp_build_flags()
    stamp = {
        "compiler": cxx,
        "flags": flags,
        "source": str(source),
        "source_sha256": sha256(source.read_bytes()).hexdigest(),
        "torch": torch.__version__,
    }
    if (
        binary.is_file()
        and binary.stat().st_mtime >= source.stat().st_mtime
        and _read_json(stamp_path) == stamp
    ):
        return binary
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{RUNNER_NAME}.", suffix=".tmp", dir=folder
    )
    os.close(fd)
    command = [*cxx, str(source), "-o", tmp_name, *flags]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            output = (result.stderr + result.stdout).strip().splitlines()
            tail = "\n".join(output[-COMPILER_LINES:]) or "(no output)"
            raise DeployError(
                f"building the C++ runner failed (exit {result.returncode}):\n"
                f"  {shlex.join(command)}\nlast lines from the compiler:\n{tail}"
            )
        os.chmod(tmp_name, 0o755)
        os.replace(tmp_name, binary)
    except OSError as error:
        raise DeployError(f"cannot run the C++ compiler {cxx[0]!r}: {error}") from error
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    text = json.dumps(stamp, indent=2, sort_keys=True) + "\n"
    atomic_write(stamp_path, lambda handle: handle.write(text.encode()))
    return binary


# ---------------------------------------------------------------- timing

LATENCY_KEYS = ("median_ms", "mean_ms", "p10_ms", "p90_ms", "min_ms", "max_ms")
"""The statistics both :func:`time_python` and the C++ runner report."""


def latency_stats(samples_ms: Sequence[float]) -> dict[str, float]:
    """Median, mean, 10th and 90th percentiles, min and max of per-call times (ms).

    Percentiles interpolate linearly between ranks (numpy's default), as the
    C++ runner does; values are rounded to the runner's 6 decimals.
    """
    values = np.asarray(samples_ms, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no latency samples: time at least one call")
    stats = {
        "median_ms": np.percentile(values, 50),
        "mean_ms": values.mean(),
        "p10_ms": np.percentile(values, 10),
        "p90_ms": np.percentile(values, 90),
        "min_ms": values.min(),
        "max_ms": values.max(),
    }
    return {key: round(float(value), 6) for key, value in stats.items()}


def _check_counts(iters: int, warmup: int, threads: int) -> None:
    for name, value, least in (
        ("iters", iters, 1),
        ("warmup", warmup, 0),
        ("threads", threads, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an int >= {least}, got {value!r}")


def _leaves(value: Any) -> list[torch.Tensor]:
    """The tensors in a model's output: a tensor, or nested tuples, lists, dicts."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in _leaves(item)]
    return []


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_python(
    fn: Callable[..., Any],
    inputs: torch.Tensor | Sequence[torch.Tensor],
    *,
    iters: int = 100,
    warmup: int = 10,
    threads: int = 1,
) -> dict[str, Any]:
    """Time ``fn(*inputs)`` per call, as the C++ runner times a package.

    ``warmup`` untimed calls, then ``iters`` timed ones, under
    ``torch.inference_mode()`` with ``threads`` intra-op threads (restored
    afterwards); on CUDA each call is synchronised before its clock stops.

    Returns:
        The :data:`LATENCY_KEYS` in milliseconds, plus ``iters``, ``warmup``,
        ``threads`` (as torch reported them while timing), ``batch_size`` (first
        dimension of input 0), ``device`` and ``output_shapes``.
    """
    args = tuple(_as_tensors(inputs, "inputs"))
    _check_counts(iters, warmup, threads)
    device = args[0].device if args else torch.device("cpu")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        used = torch.get_num_threads()
        samples = []
        with torch.inference_mode():
            for _ in range(warmup):
                output = fn(*args)
            _synchronize(device)
            for _ in range(iters):
                start = time.perf_counter_ns()
                output = fn(*args)
                _synchronize(device)
                samples.append((time.perf_counter_ns() - start) / 1e6)
    finally:
        torch.set_num_threads(previous)
    return {
        **latency_stats(samples),
        "batch_size": int(args[0].shape[0]) if args and args[0].dim() else None,
        "device": str(device),
        "iters": iters,
        "output_shapes": [list(t.shape) for t in _leaves(output)],
        "threads": used,
        "warmup": warmup,
    }


def _compare_outputs(
    actual: list[torch.Tensor], reference: Any, rtol: float | None, atol: float | None
) -> float:
    expected = [t.detach().to("cpu") for t in _leaves(reference)]
    if len(actual) != len(expected):
        raise DeployError(
            f"the C++ runner returned {len(actual)} output(s), the reference has "
            f"{len(expected)}"
        )
    worst = 0.0
    for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
        try:
            torch.testing.assert_close(got, want, rtol=rtol, atol=atol)
        except AssertionError as error:
            raise DeployError(
                f"output {index} of the C++ runner differs from the reference: "
                f"{' '.join(str(error).split())}"
            ) from None
        if got.numel():
            worst = max(worst, float((got.double() - want.double()).abs().max()))
    return worst


def time_cpp(
    runner: str | Path,
    package: str | Path,
    inputs: torch.Tensor | Sequence[torch.Tensor],
    *,
    iters: int = 100,
    warmup: int = 10,
    threads: int = 1,
    reference: Any = None,
    rtol: float | None = None,
    atol: float | None = None,
    timeout_s: float = 600.0,
) -> dict[str, Any]:
    """Time a package in the C++ runner, a process with no Python in it.

    Writes ``inputs`` to a temporary folder, runs ``runner package folder
    --iters --warmup --threads --out``, and reads back its JSON line and the
    outputs of its last call.

    Args:
        runner: from :func:`build_cpp_runner`.
        package: from :func:`export_aoti`.
        inputs: the model's positional inputs (on the CPU).
        iters, warmup, threads: as for :func:`time_python`.
        reference: the eager model's output for ``inputs``; when given, the C++
            outputs must match it (``torch.testing.assert_close`` with ``rtol``
            and ``atol``, default: by dtype).
        timeout_s: give up on a runner that runs longer.

    Returns:
        The runner's report: :data:`LATENCY_KEYS` in milliseconds, ``iters``,
        ``warmup``, ``threads``, ``batch_size``, ``device``, ``output_shapes``,
        ``output_dtypes``, ``load_ms`` (loading the package),
        ``peak_memory_mb`` (the runner process's peak resident memory: libtorch,
        the package, the inputs; compare with a Python mode measured in its own
        process), ``model``, ``torch`` and ``compiler`` (the runner's build);
        plus ``outputs`` (the tensors) and, with a reference, ``max_abs_diff``.

    Raises:
        DeployError: if the runner is missing or fails (its message is quoted),
            or its outputs differ from the reference.
    """
    runner, package = Path(runner), Path(package)
    args = _as_tensors(inputs, "inputs")
    _check_counts(iters, warmup, threads)
    if not runner.is_file():
        raise DeployError(
            f"C++ runner {str(runner)!r} does not exist; build it with build_cpp_runner"
        )
    with tempfile.TemporaryDirectory(prefix="rlbook-aoti-") as tmp:
        folder = Path(tmp)
        write_inputs(args, folder / "inputs")
        command = [
            str(runner),
            str(package),
            str(folder / "inputs"),
            "--iters",
            str(iters),
            "--warmup",
            str(warmup),
            "--threads",
            str(threads),
            "--out",
            str(folder / "outputs"),
        ]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise DeployError(
                f"the C++ runner ran past {timeout_s} s; lower iters or raise timeout_s"
            ) from None
        except OSError as error:
            raise DeployError(
                f"cannot run the C++ runner {str(runner)!r}: {error}"
            ) from error
        if result.returncode != 0:
            how = (
                f"was killed by signal {-result.returncode}"
                if result.returncode < 0
                else f"failed (exit {result.returncode})"
            )
            raise DeployError(
                f"the C++ runner {how}: {result.stderr.strip() or '(no message)'}"
            )
        lines = result.stdout.strip().splitlines()
        try:
            report = dict(json.loads(lines[-1]))
        except (IndexError, ValueError):
            raise DeployError(
                f"the C++ runner printed no JSON line; its output was {result.stdout!r}"
            ) from None
        outputs = read_outputs(folder / "outputs")
    if reference is not None:
        report["max_abs_diff"] = _compare_outputs(outputs, reference, rtol, atol)
    report["outputs"] = outputs
    return report


# ---------------------------------------------------------------- memory and processes


def peak_memory_mb(device: str | torch.device | None = None) -> float:
    """Peak memory of this process so far, in MiB.

    On the CPU (``device`` None or a CPU): the peak resident set size, which
    counts everything the process ever held at once (the Python interpreter,
    torch's libraries, compiled packages) since it started. Compare modes by
    measuring each in a fresh process (:func:`run_in_subprocess`). On Linux it is
    ``VmHWM`` from ``/proc/self/status``; elsewhere ``getrusage``'s ``ru_maxrss``.

    On CUDA: ``torch.cuda.max_memory_allocated(device)``, tensors only, since
    the last ``torch.cuda.reset_peak_memory_stats``.
    """
    if device is not None and torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(torch.device(device)) / 2**20
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    try:
        import resource
    except ImportError:  # Windows
        raise DeployError(
            f"cannot measure peak memory on {platform.system()}; measure it on Linux "
            "or macOS"
        ) from None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes vs kB


def _target_name(fn: Callable[..., Any] | str) -> str:
    if isinstance(fn, str):
        module, _, qualname = fn.partition(":")
        if not module or not qualname:
            raise ValueError(
                f"name the function as 'module:function', e.g. "
                f"'rlbook.projects.deploy:peak_memory_mb', got {fn!r}"
            )
        return fn
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or module == "__main__" or not qualname or "<" in qualname:
        raise DeployError(
            f"run_in_subprocess cannot import {fn!r} in a fresh process: define it at "
            "the top level of a module (not in a notebook cell, a script run as "
            "__main__, or another function), or pass its name as 'module:function'"
        )
    return f"{module}:{qualname}"


def _call_by_name(target: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    module, _, qualname = target.partition(":")
    value: Any = importlib.import_module(module)
    for part in qualname.split("."):
        value = getattr(value, part)
    return value(*args, **kwargs)


def _child(connection: Any, target: str, args: tuple, kwargs: dict) -> None:
    try:
        outcome: tuple[bool, Any] = (True, _call_by_name(target, args, kwargs))
    except BaseException as error:  # reported to the parent, which re-raises
        outcome = (False, (error, traceback.format_exc()))
    try:
        connection.send(outcome)
    except Exception as error:  # a result or an exception that does not pickle
        detail = outcome[1][1] if not outcome[0] else ""
        connection.send(
            (
                False,
                (DeployError(f"cannot send {target}'s outcome back: {error}"), detail),
            )
        )
    finally:
        connection.close()


def run_in_subprocess(
    fn: Callable[..., Any] | str,
    *args: Any,
    timeout_s: float | None = None,
    **kwargs: Any,
) -> Any:
    """Call ``fn(*args, **kwargs)`` in a fresh Python process and return its result.

    The process is started with ``spawn`` (a new interpreter, nothing inherited),
    so what it measures, peak memory included, is the call's alone. ``fn`` must
    be importable by name: a top-level function of a module, or its name as
    ``"module:function"``; arguments and result must pickle. An exception in the
    child is raised again here, with the child's traceback as its cause.

    Raises:
        DeployError: if ``fn`` cannot be imported by name, the child dies without
            an answer (a crash, or killed for memory), or it runs past
            ``timeout_s`` (it is then killed).
    """
    target = _target_name(fn)
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_child, args=(sender, target, args, kwargs), name=f"rlbook:{target}"
    )
    process.start()
    sender.close()
    try:
        if not receiver.poll(timeout_s):
            process.kill()
            raise DeployError(
                f"{target} ran past {timeout_s} s in its subprocess; killed it"
            )
        try:
            ok, payload = receiver.recv()
        except EOFError:
            process.join()
            raise DeployError(
                f"the subprocess running {target} died without an answer (exit code "
                f"{process.exitcode}; negative is a signal: -9 is often out of memory)"
            ) from None
    finally:
        receiver.close()
        process.join()
    if ok:
        return payload
    error, child_traceback = payload
    raise error from DeployError(
        f"in the subprocess running {target}:\n{child_traceback}"
    )


# ---------------------------------------------------------------- comparison tables


@dataclass(frozen=True)
class ComparisonRecord:
    """One execution mode's row in a project's comparison table."""

    mode: str
    """What ran: ``"eager"``, ``"torch.compile"``, ``"aoti-python"``, ``"aoti-cpp"``, ..."""
    time: float
    """Training: seconds per epoch or per fixed steps; inference: ms per call."""
    time_unit: str
    """What ``time`` counts, e.g. ``"s/epoch"``, ``"s/200 steps"``, ``"ms/call"``."""
    throughput: float | None = None
    """Items (images, reviews, codes) per second."""
    peak_memory_mb: float | None = None
    """From :func:`peak_memory_mb`, measured in the mode's own process."""
    quality: float | None = None
    """Test accuracy, loss, ...; None where the mode does not change it (inference)."""
    quality_name: str | None = None
    """What ``quality`` is, e.g. ``"test accuracy"`` or ``"test loss (nats/image)"``."""
    device: str = "cpu"
    """Where it ran, e.g. ``"cpu (1 thread)"`` or ``"cuda:0 (NVIDIA H100)"``."""
    versions: Mapping[str, str] = field(default_factory=dict)
    """From :func:`software_versions`: torch, python, compiler."""
    data: Mapping[str, int] = field(default_factory=dict)
    """Data sizes, e.g. ``{"train": 50000, "test": 10000, "batch": 64}``."""
    notes: str = ""
    """Anything a reader needs to read the row right (budget, threads, subset)."""

    def __post_init__(self) -> None:
        if not isinstance(self.mode, str) or not self.mode:
            raise ValueError(f"mode must be a non-empty string, got {self.mode!r}")
        if not float(self.time) >= 0:
            raise ValueError(f"time must be a number >= 0, got {self.time!r}")


def software_versions(compiler: str | None = None) -> dict[str, str]:
    """torch, python and C++ compiler versions (the compiler's first ``--version`` line)."""
    try:
        command = find_cxx(compiler)
        result = subprocess.run(
            [*command, "--version"], capture_output=True, text=True, check=False
        )
        lines = result.stdout.strip().splitlines()
        version = lines[0] if lines else "unknown"
    except (DeployError, OSError):
        version = "not found"
    return {
        "compiler": version,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def time_cpp_batches(
    runner: str | Path,
    package: str | Path,
    inputs: Mapping[str, Sequence[torch.Tensor]],
    reference: Callable[..., Any],
    *,
    iters: int,
    threads: int,
    atol: float,
    rtol: float,
) -> dict[str, Any]:
    """:func:`time_cpp` for each named input tuple, checked against ``reference``.

    Returns ``{name: time_cpp's report}`` plus ``peak_memory_mb``, the
    largest of the runs' peaks, as the Python modes report theirs.
    """
    report: dict[str, Any] = {}
    with torch.no_grad():
        for name, args in inputs.items():
            report[name] = time_cpp(
                runner,
                package,
                tuple(args),
                iters=iters,
                warmup=max(2, iters // 10),
                threads=threads,
                reference=reference(*args),
                atol=atol,
                rtol=rtol,
            )
    report["peak_memory_mb"] = max(r["peak_memory_mb"] for r in report.values())
    return report


def latency_records(
    latency: Mapping[str, Mapping[str, Any]],
    batches: Mapping[str, int],
    *,
    prefix: str,
    threads: int,
    versions: Mapping[str, str],
    notes: str,
    data: Mapping[str, Mapping[str, int]] | None = None,
) -> tuple[list[ComparisonRecord], dict[str, float]]:
    """One record per mode and input of an inference latency table.

    Args:
        latency: ``{mode: {input name: a latency report, "peak_memory_mb": MB}}``
            from :func:`time_python` / :func:`time_cpp_batches`.
        batches: ``{input name: its batch size}``, in the table's order.
        prefix: the records' mode reads ``"<prefix> <input name>: <mode>"``.
        data: extra data sizes per input name, beside ``batch``.

    Returns:
        ``(records, figures)``, the figures keyed ``"<mode> <input name> ms"``
        (median latency).
    """
    records, figures = [], {}
    for mode, report in latency.items():
        for name, size in batches.items():
            median = report[name]["median_ms"]
            figures[f"{mode} {name} ms"] = median
            records.append(
                ComparisonRecord(
                    mode=f"{prefix} {name}: {mode}",
                    time=median,
                    time_unit="ms/call (median)",
                    throughput=1000 * size / median,
                    peak_memory_mb=report["peak_memory_mb"],
                    device=f"cpu ({threads} thread(s))",
                    versions=versions,
                    data={"batch": size, **(data or {}).get(name, {})},
                    notes=notes,
                )
            )
    return records, figures


def benchmark_meta(command: str, budget: str, threads: int) -> dict[str, Any]:
    """How a comparison was made: command, budget, commit, date, threads, load."""
    return {
        "command": command,
        "budget": budget,
        "git_commit": git_commit(),
        "date": time.strftime("%Y-%m-%d"),
        "threads": threads,
        # Other work on the machine slows every mode; read ratios with this.
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "cpu_count": os.cpu_count(),
    }


def comparison_path(project: str) -> Path:
    """``artifacts/projects/<project>/comparison.json`` in the repository."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", project):
        raise ValueError(
            f"project must be a short lowercase name like 'cifar10', got {project!r}"
        )
    return artifacts_dir() / "projects" / project / "comparison.json"


def write_comparison(
    path: str | Path, records: Sequence[ComparisonRecord], meta: Mapping[str, Any]
) -> Path:
    """Write a comparison table as pretty JSON with sorted keys (atomically).

    The file holds ``{"meta": meta, "records": [one object per record]}``, in the
    order given. ``meta`` says how the table was made (command, budget, git
    commit, date); it must be JSON-serialisable.

    Raises:
        ValueError: for no records, two records with the same mode, or a value
            JSON cannot hold (NaN or infinity: use None for a missing value).
    """
    if not records:
        raise ValueError("no records to write")
    modes = [record.mode for record in records]
    if len(set(modes)) != len(modes):
        raise ValueError(f"two records have the same mode: {modes}")
    payload = {"meta": dict(meta), "records": [asdict(record) for record in records]}
    try:
        text = json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n"
    except ValueError as error:
        raise ValueError(
            f"a record or meta holds NaN or infinity ({error}); use None for a "
            "missing value"
        ) from error
    path = Path(path)
    atomic_write(path, lambda handle: handle.write(text.encode()))
    return path


def load_comparison(path: str | Path) -> tuple[list[ComparisonRecord], dict[str, Any]]:
    """Read a table written by :func:`write_comparison`: ``(records, meta)``."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
        records = [ComparisonRecord(**record) for record in payload["records"]]
    except FileNotFoundError:
        raise DeployError(f"no comparison table at {str(path)!r}") from None
    except (ValueError, KeyError, TypeError) as error:
        raise DeployError(
            f"{str(path)!r} is not a comparison table written by write_comparison "
            f"({_summary(error, 1)})"
        ) from error
    return records, dict(payload.get("meta", {}))
