"""The projects' benchmark harness: AOTInductor packages, a C++ runner, fair timing.

:func:`export_aoti` and :func:`compile_aoti` make a ``.pt2`` package,
:func:`build_cpp_runner` builds ``deploy/cpp/aoti_infer.cpp`` (its README
tells how inputs and outputs cross to C++), :func:`time_cpp` times a package
there, and :func:`interleave` times modes in rounds interleaved across them,
each in a process kept for the run. :class:`Bench` is the
``benchmarks/*_modes.py`` scripts' skeleton on it; their tables are
``artifacts/projects/<project>/comparison.json`` (:mod:`rlbook.projects.deploy`).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import io
import json
import multiprocessing
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from hashlib import sha256
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
from torch import nn

from rlbook.checkpoint import atomic_write, cpuinfo, git_commit
from rlbook.paths import repo_root
from rlbook.projects.deploy import ComparisonRecord, comparison_path
from rlbook.seeding import numpy_stream
from rlbook.stats import Interval, as_scores


class DeployError(RuntimeError):
    """A model that cannot be exported, compiled, built against, loaded or run."""


# ---------------------------------------------------------------- the runner's inputs

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
"""The dtypes the C++ runner builds inputs of, with their names there."""

DTYPES_BY_NAME = {name: dtype for dtype, name in DTYPE_NAMES.items()}
FLOAT_PERIOD = 256
"""Built floating-point inputs repeat ``0, 1/256, ..., 255/256``."""


def _dtype_name(dtype: torch.dtype) -> str:
    try:
        return DTYPE_NAMES[dtype]
    except KeyError:
        raise DeployError(
            f"the C++ runner cannot build inputs of dtype {dtype}; it builds "
            f"{', '.join(DTYPE_NAMES.values())}: convert the input first"
        ) from None


def input_spec(tensor: torch.Tensor) -> str:
    """The runner's ``--input`` for an input like ``tensor``: ``DTYPE:SHAPE``
    (``float32:2x8``), with ``:MAX`` for integers and bools, the tensor's
    largest value (at least 1), so that the built values, ``MAX`` down to 1,
    are valid wherever the tensor's are (token ids, lengths)."""
    spec = f"{_dtype_name(tensor.dtype)}:{'x'.join(map(str, tensor.shape))}"
    if tensor.dtype.is_floating_point:
        return spec
    top = int(tensor.max()) if tensor.numel() else 1
    return f"{spec}:{max(top, 1)}"


def build_inputs(specs: Sequence[str]) -> list[torch.Tensor]:
    """The inputs the C++ runner builds from its ``--input`` specs, built the
    same way: element ``i`` (flat, C order) is ``(i % 256) / 256`` for floating
    point, ``MAX - i % MAX`` for integers and bools (``MAX`` 1 when left out)."""
    tensors = []
    for spec in specs:
        try:
            name, shape_text, *bound = spec.split(":")
            dtype = DTYPES_BY_NAME[name]
            shape = [int(size) for size in shape_text.split("x")]
            top = int(bound[0]) if bound else 1
            if len(bound) > 1 or top < 1 or min(shape, default=0) < 0:
                raise ValueError
            if bound and dtype.is_floating_point:
                raise ValueError
        except (KeyError, ValueError):
            raise DeployError(
                f"bad input spec {spec!r}; expected DTYPE:SHAPE[:MAX] (int64:2x6:49), "
                f"MAX >= 1 for integer inputs only, DTYPE one of "
                f"{', '.join(DTYPE_NAMES.values())}"
            ) from None
        index = torch.arange(int(np.prod(shape, dtype=np.int64)))
        if dtype.is_floating_point:
            values = index.remainder(FLOAT_PERIOD).double().div(FLOAT_PERIOD)
        else:
            values = top - index.remainder(top)
        tensors.append(values.to(dtype).reshape(shape))
    return tensors


# ---------------------------------------------------------------- export and compile

CHECK_INPUTS_ENV = "AOTI_RUNTIME_CHECK_INPUTS"
"""Set to 1, the compiled code checks every call's input dtypes and shapes."""
TIMING_CHECK_INPUTS = False
"""Whether a timed package checks its inputs, from Python (``aoti-python``)
and from C++ (``aoti-cpp``) alike: off, as a deployed model's hot path."""
COMPILER_LINES = 25  # lines of a failed build's output quoted in the error


def _summary(error: BaseException, lines: int = 3) -> str:
    text = "\n".join(str(error).strip().splitlines()[:lines])
    return f"{type(error).__name__}: {text or 'no detail'}"


@contextlib.contextmanager
def _quiet_torch_warnings() -> Iterator[None]:
    """Hide torch's own deprecation notices: nobody here can act on them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _program_signature(program: torch.export.ExportedProgram) -> tuple[str, int]:
    """``("float32[batch,8] int64[batch,6]", max_batch)`` of a program's inputs
    (``any`` for a dynamic dimension after the first; max_batch 0: unbounded)."""
    user_inputs = set(program.graph_signature.user_inputs)
    specs, max_batch = [], 0
    for node in program.graph.nodes:
        if node.op != "placeholder" or node.name not in user_inputs:
            continue
        value = node.meta.get("val")
        if not isinstance(value, torch.Tensor):
            raise DeployError(
                f"input {node.name!r} is a {type(value).__name__}, not a tensor; the "
                "compiled path takes tensor inputs only"
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
    model_name: str = "",
) -> Path:
    """AOTInductor-compile an exported program into one ``.pt2`` package
    (atomically), its signature in its ``rlbook.*`` metadata, which the C++
    runner checks inputs against.

    Its kernels use the threads the caller pins when it runs them
    (Inductor's default bakes in the compiling process's count, a trap when
    comparing thread counts).
    """
    from torch._inductor import aoti_compile_and_package

    path = Path(package_path)
    signature, max_batch = _program_signature(program)
    _progress(f"AOTInductor compiling {model_name or path.name}")
    configs: dict[str, Any] = {
        # Batch 1 is in range: export refines a dynamic size's lower bound to 2,
        # which the package would otherwise enforce when inputs are checked.
        "aot_inductor.check_lowerbound": False,
        "aot_inductor.metadata": {
            "rlbook.inputs": signature,
            "rlbook.max_batch": str(max_batch),
            "rlbook.model": model_name,
            "rlbook.threads": "dynamic",
            "rlbook.torch": torch.__version__,
        },
        "cpp.dynamic_threads": True,
    }
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
    max_batch: int = 1024,
) -> Path:
    """``torch.export`` a model in eval mode, batch dynamic, and :func:`compile_aoti` it.

    ``example_inputs``: one tensor per positional input, the batch first and
    at least 2 (``torch.export`` fixes a dimension of size 1). Make the
    example batch a typical large one: Inductor may specialise a kernel on
    which side of a threshold it falls (with torch 2.13, a convolution traced
    with a batch of 2 gives a package that takes at most 15; traced with 64,
    it takes 1 to ``max_batch``). Each submodule's mode is restored afterwards.
    """
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    inputs = tuple(example_inputs)
    name = type(model).__name__
    batches = [t.shape[0] if t.dim() else None for t in inputs]
    if not inputs or len(set(batches)) > 1 or None in batches:
        raise DeployError(
            f"the example inputs of {name} disagree on the batch size (their first "
            f"dimensions are {batches}); every input must have the batch first"
        )
    if not 2 <= batches[0] <= max_batch:
        raise DeployError(
            f"the example batch of {name} is {batches[0]}; it must be between 2 and "
            f"max_batch={max_batch} (torch.export fixes a dimension of size 1 "
            "instead of making it dynamic): repeat the example to batch 2"
        )
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with _quiet_torch_warnings():
            program = torch.export.export(
                model, inputs, dynamic_shapes=tuple({0: batch} for _ in inputs)
            )
    except Exception as error:  # torch.export raises many types
        raise DeployError(
            f"torch.export could not trace {name} ({_summary(error)}); the model's "
            "forward must take the example tensors and run without Python-side "
            "effects that depend on their values"
        ) from error
    finally:
        for module, training in modes.items():
            module.training = training
    return compile_aoti(program, package_path, model_name=name)


class AOTIModel:
    """A ``.pt2`` package loaded here: call it like the model it was exported
    from; inputs that do not fit raise :class:`DeployError` saying what fits."""

    def __init__(self, path: Path, compiled: Any, check_inputs: bool = True) -> None:
        self.path = path
        self.compiled = compiled
        self.check_inputs = check_inputs
        self.metadata: dict[str, str] = dict(compiled.get_metadata())
        self.called = False

    @property
    def signature(self) -> str:
        """The inputs the package takes, e.g. ``float32[batch,8] int64[batch,6]``."""
        return self.metadata.get("rlbook.inputs", "unknown")

    def __call__(self, *inputs: torch.Tensor) -> Any:
        if not self.called:  # the compiled code reads it now, once
            os.environ[CHECK_INPUTS_ENV] = "1" if self.check_inputs else "0"
            self.called = True
        try:
            return self.compiled(*inputs)
        except (RuntimeError, ValueError, TypeError) as error:
            given = " ".join(
                f"{DTYPE_NAMES.get(t.dtype, t.dtype)}{list(t.shape)}" for t in inputs
            )
            raise DeployError(
                f"package {self.path.name!r} rejected its inputs ({given}); it takes "
                f"{self.signature} with 1 <= batch <= "
                f"{self.metadata.get('rlbook.max_batch', '?')} ({_summary(error, 1)})"
            ) from error


def load_aoti(package_path: str | Path, *, check_inputs: bool = True) -> AOTIModel:
    """Load a package written by :func:`compile_aoti` to run from Python.

    ``check_inputs`` is ``AOTI_RUNTIME_CHECK_INPUTS`` (the C++ runner's
    ``--check-inputs``): without it a wrong dtype or shape gives wrong
    numbers or a crash. The compiled code reads the variable once, at its
    first call, which sets it.
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
    try:
        with _quiet_torch_warnings():
            compiled = aoti_load_package(str(path))
    except Exception as error:  # torch raises several types for bad packages
        raise DeployError(
            f"cannot load package {str(path)!r} ({_summary(error)}); export it again "
            f"with this torch ({torch.__version__}) on this machine"
        ) from error
    return AOTIModel(path, compiled, check_inputs)


# ---------------------------------------------------------------- the C++ runner

RUNNER_SOURCE = Path("deploy") / "cpp" / "aoti_infer.cpp"
"""The runner's source, relative to the repository root."""
RUNNER_NAME = "aoti_infer"
COMPILER_CANDIDATES = ("c++", "g++", "clang++")


def find_cxx(compiler: str | None = None) -> list[str]:
    """The C++ compiler command: ``compiler``, else ``$CXX``, else c++, g++,
    clang++; a list, as ``$CXX`` may carry words (``"ccache g++"``)."""
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
        if (found := shutil.which(name)) is not None:
            return [found]
    raise DeployError(
        f"no C++ compiler found (looked for $CXX, {', '.join(COMPILER_CANDIDATES)}); "
        "install one (Debian/Ubuntu: apt-get install g++; macOS: xcode-select "
        "--install) or set CXX to a C++20 compiler's path"
    )


def cpp_build_flags() -> list[str]:
    """Flags (after the source file) that build against the torch wheel's
    libtorch: ``-isystem`` quiets its headers' warnings, the wheel's
    ``_GLIBCXX_USE_CXX11_ABI`` (a mismatch fails at link time), ``-rpath``
    to find ``libtorch*.so`` without ``LD_LIBRARY_PATH``."""
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


def build_cpp_runner(out_dir: str | Path, *, compiler: str | None = None) -> Path:
    """Compile ``deploy/cpp/aoti_infer.cpp`` into ``out_dir/aoti_infer``; its path
    (see :func:`build_cpp_program`)."""
    return build_cpp_program(RUNNER_NAME, out_dir, compiler=compiler)


def build_cpp_program(
    name: str, out_dir: str | Path, *, compiler: str | None = None
) -> Path:
    """Compile ``deploy/cpp/NAME.cpp`` against the wheel's libtorch into
    ``out_dir/NAME``; its path. Skipped when the binary is newer than the
    source and was built from the same source, compiler and flags (recorded
    in ``NAME.build.json`` beside it)."""
    source = repo_root() / RUNNER_SOURCE.parent / f"{name}.cpp"
    if not source.is_file():
        raise DeployError(f"no C++ program {source}")
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    binary = folder / name
    stamp_path = folder / f"{name}.build.json"
    cxx, flags = find_cxx(compiler), cpp_build_flags()
    stamp = {
        "compiler": cxx,
        "flags": flags,
        "source": str(source),
        "source_sha256": sha256(source.read_bytes()).hexdigest(),
        "torch": torch.__version__,
    }
    text = json.dumps(stamp, indent=2, sort_keys=True) + "\n"
    with contextlib.suppress(OSError):
        if (
            binary.stat().st_mtime >= source.stat().st_mtime
            and stamp_path.read_text() == text
        ):
            return binary
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
    os.close(fd)
    command = [*cxx, str(source), "-o", tmp_name, *flags]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            output = (result.stderr + result.stdout).strip().splitlines()
            tail = "\n".join(output[-COMPILER_LINES:]) or "(no output)"
            raise DeployError(
                f"building {source.name} failed (exit {result.returncode}):\n"
                f"  {shlex.join(command)}\nlast lines from the compiler:\n{tail}"
            )
        os.chmod(tmp_name, 0o755)
        os.replace(tmp_name, binary)
    except OSError as error:
        raise DeployError(f"cannot run the C++ compiler {cxx[0]!r}: {error}") from error
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    atomic_write(stamp_path, lambda handle: handle.write(text.encode()))
    return binary


# ---------------------------------------------------------------- timing


class Clocks:
    """Wall and CPU seconds (all threads) charged to named parts of a program,
    by wrapping the functions it calls.

    ``with clocks.patched([(target, "name", "part"), ...]):`` clocks each
    ``target.name`` for the block. A call made inside a ``phase=True`` part
    ``P`` is charged to ``"P.part"`` when its part is ``phased`` (the
    network's forward pass while collecting and while learning).
    """

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = {}
        self._phase = "none"

    def wrap(
        self,
        fn: Callable[..., Any],
        part: str,
        *,
        phased: bool = False,
        phase: bool = False,
    ) -> Callable[..., Any]:
        @functools.wraps(fn)
        def clocked(*args: Any, **kwargs: Any) -> Any:
            key = f"{self._phase}.{part}" if phased else part
            before = self._phase
            if phase:
                self._phase = part
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = self.seconds.setdefault(key, [0.0, 0.0])
                spent[0] += time.perf_counter() - wall
                spent[1] += time.process_time() - cpu
                self._phase = before

        return clocked

    @contextlib.contextmanager
    def patched(
        self, targets: Sequence[tuple[Any, str, str] | tuple[Any, str, str, dict]]
    ) -> Iterator[Clocks]:
        with contextlib.ExitStack() as stack:
            for target, name, part, *options in targets:
                wrapper = self.wrap(getattr(target, name), part, **(options or [{}])[0])
                stack.enter_context(mock.patch.object(target, name, wrapper))
            yield self

    def get(self, key: str) -> list[float]:
        """``[wall, cpu]`` seconds charged to ``key`` (zeros if none)."""
        return list(self.seconds.get(key, [0.0, 0.0]))


def matmul_gflops(dtype: torch.dtype, threads: int, n: int = 1024) -> float:
    """This CPU's matrix-multiply rate: GFLOP/s of an ``n x n`` product, best of
    5 timings of 10, per CPU-second times ``threads`` (on a machine shared with
    other jobs, wall time counts them too, CPU time much less)."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for _ in range(3):
            a @ b
        best = float("inf")
        for _ in range(5):
            start = time.process_time()
            for _ in range(10):
                a @ b
            best = min(best, (time.process_time() - start) / 10)
    finally:
        torch.set_num_threads(before)
    return 2 * n**3 / best / 1e9 * threads


def cpu_description() -> dict[str, Any]:
    """The CPU's name, cores, and the instruction sets that decide PyTorch's
    speed on it (AVX-512 and its bf16 and VNNI extensions, AMX)."""
    cpu = cpuinfo()
    flags = set(cpu.get("flags", "").split())
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
    return {
        "model": cpu.get("model name") or platform.processor(),
        "cores": os.cpu_count(),
        "isa": [f for f in wanted if f in flags],
        "loadavg_1min": os.getloadavg()[0],
    }


def _leaves(value: Any) -> list[torch.Tensor]:
    """The tensors in a model's output: a tensor, or nested tuples, lists, dicts."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in _leaves(item)]
    return []


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
                f"output {index} of the C++ runner differs from the same package's "
                f"in Python: {' '.join(str(error).split())}"
            ) from None
        if got.numel():
            worst = max(worst, float((got.double() - want.double()).abs().max()))
    return worst


def _specs(inputs: torch.Tensor | Sequence[torch.Tensor | str]) -> list[str]:
    items = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
    return [item if isinstance(item, str) else input_spec(item) for item in items]


def package_outputs(
    package: str | Path, inputs: Sequence[torch.Tensor | str], *, check_inputs: bool
) -> list[torch.Tensor]:
    """The package's outputs in Python on the inputs the C++ runner builds for
    ``inputs`` (:func:`build_inputs`), loaded with the same ``check_inputs``:
    what the runner's outputs are checked against."""
    model = load_aoti(package, check_inputs=check_inputs)
    with torch.inference_mode():
        return [t.clone() for t in _leaves(model(*build_inputs(_specs(inputs))))]


def time_cpp(
    runner: str | Path,
    package: str | Path,
    inputs: torch.Tensor | Sequence[torch.Tensor | str],
    *,
    iters: int = 100,
    warmup: int = 10,
    threads: int = 1,
    check_inputs: bool = True,
    check: bool = True,
    rtol: float | None = None,
    atol: float | None = None,
    timeout_s: float = 600.0,
) -> dict[str, Any]:
    """Time a package in the C++ runner, a process with no Python in it:
    ``warmup`` untimed calls, then ``iters`` timed ones, on inputs it builds
    like ``inputs`` (tensors, or their :func:`input_spec`).

    Returns the runner's report (``deploy/cpp/README.md`` lists its keys)
    with ``outputs`` (its last call's), their ``output_shapes`` and
    ``output_dtypes``; with ``check``, also ``max_abs_diff`` from the same
    package in Python on the same inputs (:func:`package_outputs`), which
    must agree within ``rtol`` and ``atol`` (``assert_close``).
    """
    runner, package = Path(runner), Path(package)
    specs = _specs(inputs)
    build_inputs(specs)  # a bad spec fails here, with its message
    if not runner.is_file():
        raise DeployError(
            f"C++ runner {str(runner)!r} does not exist; build it with build_cpp_runner"
        )
    command = [str(runner), str(package)]
    for spec in specs:
        command += ["--input", spec]
    for flag, value in (("iters", iters), ("warmup", warmup), ("threads", threads)):
        command += [f"--{flag}", str(value)]
    command += ["--check-inputs", str(int(check_inputs))]
    with tempfile.TemporaryDirectory(prefix="rlbook-aoti-") as tmp:
        out = Path(tmp) / "outputs.pt"
        try:
            result = subprocess.run(
                [*command, "--out", str(out)],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DeployError(
                f"the C++ runner ran past {timeout_s} s; lower iters or raise timeout_s"
            ) from None
        if result.returncode != 0:
            how = (
                f"was killed by signal {-result.returncode}"
                if result.returncode < 0
                else f"failed (exit {result.returncode})"
            )
            raise DeployError(
                f"the C++ runner {how}: {result.stderr.strip() or '(no message)'}"
            )
        try:
            report = dict(json.loads(result.stdout.strip().splitlines()[-1]))
        except (IndexError, ValueError):
            raise DeployError(
                f"the C++ runner printed no JSON line; its output was {result.stdout!r}"
            ) from None
        outputs = list(torch.load(out, weights_only=True))
    report["output_shapes"] = [list(t.shape) for t in outputs]
    report["output_dtypes"] = [DTYPE_NAMES.get(t.dtype, str(t.dtype)) for t in outputs]
    if check:
        reference = package_outputs(package, specs, check_inputs=check_inputs)
        report["max_abs_diff"] = _compare_outputs(outputs, reference, rtol, atol)
    report["outputs"] = outputs
    return report


# ---------------------------------------------------------------- what compiled


def explain(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """``torch._dynamo.explain``'s graphs, graph breaks, operators and (at most
    5) distinct break reasons of ``fn(*args, **kwargs)``; Dynamo's caches are
    reset afterwards, so a compile that follows starts cold."""
    import torch._dynamo

    try:
        report = torch._dynamo.explain(fn)(*args, **kwargs)
    finally:
        torch._dynamo.reset()
    reasons: list[str] = []
    for item in report.break_reasons:
        line = str(getattr(item, "reason", item)).strip().splitlines()[0][:160]
        if line not in reasons:
            reasons.append(line)
    return {
        "graphs": int(report.graph_count),
        "graph_breaks": int(report.graph_break_count),
        "ops": int(report.op_count),
        "break_reasons": reasons[:5],
    }


def _progress(message: str) -> None:
    """A line on stderr, so a long run shows where it is."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def dynamo_graphs() -> int:
    """Graphs ``torch.compile`` has compiled in this process so far (Dynamo's
    own count): 0 means a "compiled" mode ran eagerly."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


# ---------------------------------------------------------------- interleaved modes


def _call(target: str, args: tuple) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)(*args)


MEMORY_METHOD = (
    "Linux VmHWM of the mode's own process, reset (5 written to "
    "/proc/self/clear_refs) just before its first timed repetition; peak is "
    "VmHWM after the last one minus VmRSS before the first; baseline is that "
    "VmRSS (interpreter, torch, data, model, compiled code)"
)
"""How :func:`interleave` measures a mode's memory (stated in every record)."""

_WORKER: dict[str, Any] = {}
"""In a mode's worker process: its runner and its memory baseline."""


def _status_mb(key: str) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # kB
    return None


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its VmRSS (Linux 4.0+); False where not."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _tensors(value: Any) -> list[torch.Tensor]:
    return [t.detach().to("cpu", torch.float32) for t in _leaves(value)]


def _clocked(fn: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """``fn()`` and its wall and CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    clocks = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
    return value, clocks


def _first_outputs(runner: Any) -> tuple[list[torch.Tensor], dict[str, float]]:
    """A runner's outputs on the fixed batch, and that first call's clocks
    (a compiled mode compiles its forward pass there)."""
    return _clocked(lambda: _tensors(runner.outputs()))


def _worker_start(target: str, mode: str, args: tuple, threads: int) -> tuple:
    """In a fresh worker: build the mode's runner; :func:`_first_outputs`
    and the runner's ``compiled`` (what a compiled mode compiles), if any."""
    torch.set_num_threads(threads)
    runner = _call(target, (mode, *args))
    _WORKER.clear()
    _WORKER["runner"] = runner
    # Graphs compiled from here on: not explain's, made while building.
    _WORKER["graphs_before"] = dynamo_graphs()
    _progress(f"{mode}: built")
    return (*_first_outputs(runner), getattr(runner, "compiled", None))


def _clocked_step(runner: Any) -> dict[str, Any]:
    extra, sample = _clocked(runner.step)
    return sample | dict(extra or {})


def _worker_step(timed: bool) -> dict[str, Any]:
    """One repetition; before the first timed one, the memory baseline."""
    if timed and "baseline_mb" not in _WORKER:
        import gc

        gc.collect()
        _WORKER["baseline_mb"] = _status_mb("VmRSS")
        _WORKER["reset"] = reset_peak_rss()
    return _clocked_step(_WORKER["runner"])


def _worker_memory() -> dict[str, Any]:
    baseline, peak = _WORKER.get("baseline_mb"), _status_mb("VmHWM")
    measured = _WORKER.get("reset") and baseline is not None and peak is not None
    return {
        "baseline_mb": baseline,
        "peak_above_baseline_mb": peak - baseline if measured else None,
        "method": MEMORY_METHOD if measured else "not measured on this system",
        "graphs_compiled": dynamo_graphs() - _WORKER.get("graphs_before", 0),
    }


class _ModeProcess:
    """A mode's runner in a spawned process of its own, kept for the run."""

    def __init__(self, target: str, mode: str, args: tuple, threads: int) -> None:
        spawn = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(max_workers=1, mp_context=spawn)
        self.outputs, self.check_call, self.compiled = self.pool.submit(
            _worker_start, target, mode, args, threads
        ).result()

    def step(self, timed: bool) -> dict[str, Any]:
        return self.pool.submit(_worker_step, timed).result()

    def memory(self) -> dict[str, Any]:
        return self.pool.submit(_worker_memory).result()

    def close(self) -> None:
        self.pool.shutdown()


class _LocalMode:
    """A mode run in this process (one that starts its own program, the C++
    runner): its runner's ``step`` returns the sample's clocks itself."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.outputs, self.check_call = _first_outputs(runner)
        self.compiled = None
        # What its outputs are checked against, where not the first mode's.
        self.reference = (
            _tensors(runner.reference()) if hasattr(runner, "reference") else None
        )

    def step(self, timed: bool) -> dict[str, Any]:
        return _clocked_step(self.runner)

    def memory(self) -> dict[str, Any]:
        return dict(self.runner.memory())

    def close(self) -> None:
        pass


class CallRunner:
    """An inference mode's runner: ``iters`` calls of ``fn(*inputs)`` per
    step, under ``torch.inference_mode()``."""

    def __init__(
        self, fn: Callable[..., Any], inputs: Sequence[torch.Tensor], iters: int
    ) -> None:
        self.fn, self.inputs, self.iters = fn, tuple(inputs), iters

    def outputs(self) -> Any:
        with torch.inference_mode():
            return self.fn(*self.inputs)

    def step(self) -> None:
        with torch.inference_mode():
            for _ in range(self.iters):
                self.fn(*self.inputs)


class CppRunner:
    """The C++ runner as a mode: a step is one run of the program
    (:func:`time_cpp`), its sample the wall time of its ``iters`` calls as
    the program timed them (CPU time unknown: None). Its outputs are checked
    against :meth:`reference`, the same package's in Python on the same
    built inputs."""

    def __init__(
        self,
        runner: Path,
        package: Path,
        inputs: Sequence[torch.Tensor],
        iters: int,
        threads: int,
        check_inputs: bool = TIMING_CHECK_INPUTS,
    ) -> None:
        self.runner, self.package = runner, package
        self.specs = [input_spec(t) for t in inputs]
        self.iters, self.threads, self.peak = iters, threads, 0.0
        self.check_inputs = check_inputs

    def _run(self, iters: int, warmup: int) -> dict[str, Any]:
        report = time_cpp(
            self.runner,
            self.package,
            self.specs,
            iters=iters,
            warmup=warmup,
            threads=self.threads,
            check_inputs=self.check_inputs,
            check=False,
        )
        self.peak = max(self.peak, float(report["peak_memory_mb"]))
        return report

    def outputs(self) -> list[torch.Tensor]:
        return self._run(1, 0)["outputs"]

    def reference(self) -> list[torch.Tensor]:
        return package_outputs(self.package, self.specs, check_inputs=self.check_inputs)

    def step(self) -> dict[str, Any]:
        report = self._run(self.iters, max(2, self.iters // 10))
        return {"wall_s": report["mean_ms"] * self.iters / 1000, "cpu_s": None}

    def memory(self) -> dict[str, Any]:
        return {
            "baseline_mb": None,
            "peak_above_baseline_mb": None,
            "process_peak_mb": self.peak,
            "method": "the C++ runner process's own peak resident memory, "
            "libtorch included; no baseline apart",
        }


def compare_outputs(
    outputs: Sequence[torch.Tensor],
    reference: Sequence[torch.Tensor],
    atol: float,
    rtol: float,
) -> dict[str, Any]:
    """Whether every output is within ``atol + rtol * |reference|`` of the
    reference's (``torch.isclose``'s rule), with the largest difference."""
    if len(outputs) != len(reference) or any(
        a.shape != b.shape for a, b in zip(outputs, reference, strict=False)
    ):
        shapes = [list(t.shape) for t in outputs], [list(t.shape) for t in reference]
        raise DeployError(f"outputs and reference differ in shape: {shapes}")
    worst, within = 0.0, True
    for got, want in zip(outputs, reference, strict=True):
        if got.numel():
            worst = max(worst, float((got - want).abs().max()))
            within &= bool(torch.isclose(got, want, rtol=rtol, atol=atol).all())
    return {"max_abs_diff": worst, "atol": atol, "rtol": rtol, "passed": within}


def _check(
    process: Any, first: Sequence[torch.Tensor], tolerance: tuple[float, float]
) -> dict[str, Any]:
    """:func:`compare_outputs` against the first mode's outputs, or against
    the mode's own reference where it has one (the C++ runner's)."""
    own = getattr(process, "reference", None)
    check = compare_outputs(process.outputs, first if own is None else own, *tolerance)
    if own is not None:
        check["against"] = "the same package in Python, on the inputs the runner built"
    return check


def bootstrap_ratio(
    values: Sequence[float],
    baseline: Sequence[float],
    *,
    resamples: int = 10_000,
    seed: int = 0,
) -> Interval:
    """``mean(values) / mean(baseline)`` of paired timings, with a 95%
    interval: sample ``k`` of each side comes from round ``k`` of an
    interleaved run, so the same rounds are resampled for both, and a slow
    spell of the machine, which falls on both, cancels instead of widening
    the interval."""
    a, b = as_scores(values), as_scores(baseline)
    if a.size != b.size:
        raise ValueError(
            f"paired samples need one value per round on each side, got "
            f"{a.size} and {b.size}"
        )
    if np.any(b <= 0):
        raise ValueError("baseline values must be positive (times, rates)")
    rounds = numpy_stream(seed, "bootstrap").integers(0, a.size, (resamples, a.size))
    ratios = a[rounds].mean(axis=1) / b[rounds].mean(axis=1)
    tail = (1.0 - 0.95) / 2.0
    low, high = np.quantile(ratios, [tail, 1.0 - tail])
    method = "paired percentile bootstrap over rounds"
    return Interval(
        float(a.mean() / b.mean()), float(low), float(high), 0.95, a.size, method
    )


def _interval(values: Sequence[float], baseline: Sequence[float]) -> dict[str, Any]:
    interval = asdict(bootstrap_ratio(list(values), list(baseline)))
    return {"ratio": interval.pop("mean"), **interval}


def _warm_cache_calls(
    target: str, mode: str, args: Sequence[Any], threads: int
) -> dict[str, Any]:
    """A compiled mode's first calls again, in a fresh process after the
    timed rounds, with the Inductor caches the run filled: the compile time
    of a second start on the same machine."""
    _progress(f"{mode}: first calls again, in a fresh process (warm cache)")
    process = _ModeProcess(target, mode, tuple(args), threads)
    try:
        return {
            "check_call_warm_cache": process.check_call,
            "first_call_warm_cache": process.step(False),
        }
    finally:
        process.close()


def interleave(
    target: str,
    modes: Sequence[str],
    args: Sequence[Any],
    *,
    reps: int,
    warmup: int,
    threads: int,
    tolerances: Mapping[str, tuple[float, float]],
    local: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Time modes in repetitions interleaved across them (ABCABC..., not AABBCC).

    Each mode of ``modes`` runs in a spawned process of its own, kept for the
    run, where ``target(mode, *args)`` (``target`` is ``"module:function"``)
    returns its runner: ``outputs()`` (its outputs on one fixed batch) and
    ``step()`` (one repetition of the timed work), and for a compiled mode
    ``compiled`` (:func:`explain`'s figures; the run fails if the process
    then compiles no graph). A runner of ``local`` is built here (work that
    starts its own program) and also has ``memory()``, and may have
    ``reference()`` to check its outputs against. Every mode's first step is
    timed apart (it holds compilation), ``warmup - 1`` more are untimed,
    then ``reps`` rounds time one step of every mode in turn.

    Returns ``{mode: {...}}``: ``check_call`` and ``first_call`` (the clocks
    of the first ``outputs()`` and step; for a compiled mode also both again
    in a fresh process with the caches the run filled, ``*_warm_cache``),
    ``samples`` (``wall_s``, ``cpu_s`` or None, ``order``), ``warmup``,
    ``memory``, ``same_computation`` (outputs against the first mode's
    within ``tolerances[mode] = (atol, rtol)``), ``compiled`` and ``ratio``:
    mean time per step over the first mode's, with a 95% interval paired
    over rounds (:func:`bootstrap_ratio`), on CPU seconds where both modes
    have them (``"clock"``).
    """
    if reps < 2 or warmup < 1:
        raise ValueError(f"need reps >= 2 and warmup >= 1, got {reps}, {warmup}")
    order = [*modes, *(local or {})]
    if len(set(order)) != len(order) or set(tolerances) != set(order):
        raise ValueError(f"one tolerance per mode, each mode once: {order}")
    processes: dict[str, Any] = {}
    try:
        for mode in modes:
            processes[mode] = _ModeProcess(target, mode, tuple(args), threads)
        for mode, runner in (local or {}).items():
            processes[mode] = _LocalMode(runner)
        first = processes[order[0]].outputs
        results: dict[str, dict[str, Any]] = {
            mode: {
                "same_computation": _check(processes[mode], first, tolerances[mode]),
                "check_call": processes[mode].check_call,
                "warmup": warmup,
                "samples": [],
            }
            for mode in order
        }
        for mode in order:
            results[mode]["first_call"] = processes[mode].step(False)
            for _ in range(warmup - 1):
                processes[mode].step(False)
        count = 0
        for rep in range(reps):
            _progress(f"round {rep + 1} of {reps}: {', '.join(order)}")
            for mode in order:
                sample = processes[mode].step(True)
                results[mode]["samples"].append(sample | {"order": count})
                count += 1
        for mode in order:
            memory = dict(processes[mode].memory())
            graphs = memory.pop("graphs_compiled", 0)
            results[mode]["memory"] = memory
            compiled = processes[mode].compiled
            if compiled is not None:
                if not graphs:
                    raise DeployError(
                        f"mode {mode!r} says it compiles ({compiled}) but "
                        "torch.compile compiled no graph in its process: it ran "
                        "eagerly (Module.compile() compiles nothing in torch "
                        "2.13; use torch.compile(module))"
                    )
                results[mode]["compiled"] = {**compiled, "graphs_compiled": graphs}
        for mode in modes:
            if processes[mode].compiled is not None:
                results[mode] |= _warm_cache_calls(target, mode, args, threads)
    finally:
        for process in processes.values():
            process.close()
    base = results[order[0]]["samples"]
    for mode in order:
        samples = results[mode]["samples"]
        clock = (
            "cpu_s"
            if all(s.get("cpu_s") is not None for s in samples + base)
            else "wall_s"
        )
        results[mode]["ratio"] = {
            "to": order[0],
            "clock": clock.removesuffix("_s"),
            **_interval([s[clock] for s in samples], [s[clock] for s in base]),
        }
    return results


# ---------------------------------------------------------------- comparison tables


def software_versions() -> dict[str, str]:
    """torch, python and C++ compiler versions (the compiler's first ``--version`` line)."""
    try:
        result = subprocess.run(
            [*find_cxx(), "--version"],
            capture_output=True,
            text=True,
            check=False,
        )
        version = (result.stdout.strip().splitlines() or ["unknown"])[0]
    except (DeployError, OSError):
        version = "not found"
    return {
        "compiler": version,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


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


RERUN_META = ("git_commit", "date", "budget", "load_average_at_end")
RERUN_RATIO = ("ratio", "low", "high", "clock", "method")


def previous_run(payload: Mapping[str, Any]) -> dict[str, Any]:
    """What a comparison table keeps of the run it replaces: its meta's
    :data:`RERUN_META` and each mode's ratio (:data:`RERUN_RATIO`)."""
    ratios = {}
    for record in payload["records"]:
        ratio = record.get("repetitions", {}).get("ratio")
        if ratio:
            ratios[record["mode"]] = {k: ratio.get(k) for k in RERUN_RATIO}
    meta = payload.get("meta", {})
    return {"meta": {k: meta.get(k) for k in RERUN_META}, "ratios": ratios}


def write_comparison(
    path: str | Path, records: Sequence[ComparisonRecord], meta: Mapping[str, Any]
) -> Path:
    """Write ``{"meta": meta, "records": [...]}`` as compact JSON, keys sorted
    (atomically), keeping the file's other top-level keys (the DQN's
    ``"cpp_training"``). A run already there at the same budget becomes
    ``"previous_run"``, for the page to set a rerun's ratios beside; one at
    another budget drops the file's ``"previous_run"``."""
    if not records:
        raise ValueError("no records to write")
    modes = [record.mode for record in records]
    if len(set(modes)) != len(modes):
        raise ValueError(f"two records have the same mode: {modes}")
    payload: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        payload = dict(json.loads(Path(path).read_text()))
    if payload.get("records"):
        if payload.get("meta", {}).get("budget") == meta.get("budget"):
            payload["previous_run"] = previous_run(payload)
        else:
            payload.pop("previous_run", None)
    payload |= {"meta": dict(meta), "records": [asdict(record) for record in records]}
    try:
        text = json.dumps(
            payload, separators=(",", ":"), sort_keys=True, allow_nan=False
        )
    except ValueError as error:
        raise ValueError(
            f"a record or meta holds NaN or infinity ({error}); use None for a "
            "missing value"
        ) from error
    atomic_write(Path(path), lambda handle: handle.write(text.encode()))
    return Path(path)


# ---------------------------------------------------------------- a script's skeleton


def parse_args(
    doc: str,
    defaults: Mapping[str, int],
    smoke: Mapping[str, int],
    argv: Sequence[str] | None = None,
) -> argparse.Namespace:
    """``--budget``, ``--threads``, ``--no-write``, ``--out`` and an int
    option per ``defaults``, replaced by ``smoke``'s at ``--budget smoke``;
    ``argv`` lets ``projects_limit.py`` rebuild a benchmark's options."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--budget", choices=["smoke", "full"], default="full")
    parser.add_argument("--threads", type=int, default=1)
    for name, default in defaults.items():
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--out",
        type=Path,
        help="write the table here instead, at any budget (a scratch run)",
    )
    args = parser.parse_args(argv)
    if args.budget == "smoke":
        vars(args).update(smoke)
    return args


INDUCTOR_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


class Bench:
    """One run of a ``benchmarks/*_modes.py`` script: ``with Bench(project,
    __file__, args) as bench:`` gives a scratch folder, ``bench.folder``;
    :meth:`interleaved` and :meth:`infer_interleaved` fill the table and
    :meth:`finish` writes it and prints one JSON line."""

    def __init__(self, project: str, script: str, args: argparse.Namespace) -> None:
        self.project = project
        self.script = Path(script)
        self.args = args
        self.threads: int = args.threads
        self.versions = software_versions()
        self.commit = git_commit()  # the tree the run started from
        self.records: list[ComparisonRecord] = []
        self.figures: dict[str, float] = {}
        self.ratios: dict[str, float] = {}

    def __enter__(self) -> Bench:
        self._scratch = tempfile.TemporaryDirectory()
        self.folder = Path(self._scratch.name)
        # An empty Inductor cache: a mode's first call compiles from cold;
        # interleave's warm-cache first calls then find it filled.
        self._cache = os.environ.get(INDUCTOR_CACHE_ENV)
        os.environ[INDUCTOR_CACHE_ENV] = str(self.folder / "inductor-cache")
        return self

    def __exit__(self, *_: object) -> None:
        if self._cache is None:
            os.environ.pop(INDUCTOR_CACHE_ENV, None)
        else:
            os.environ[INDUCTOR_CACHE_ENV] = self._cache
        self._scratch.cleanup()

    def add(self, figure: str, **fields: Any) -> None:
        """A record on ``--threads`` threads; its time is ``figure`` too."""
        self.figures[figure] = fields["time"]
        self.records.append(
            ComparisonRecord(
                device=f"cpu ({self.threads} thread(s))",
                versions=self.versions,
                **fields,
            )
        )

    def interleaved(
        self,
        fn: Callable[..., Any],
        modes: Sequence[str],
        *args: Any,
        prefix: str,
        unit: str,
        scale: float = 1.0,
        items: int,
        tolerances: Mapping[str, tuple[float, float]],
        data: Mapping[str, int],
        notes: str,
        local: Mapping[str, Any] | None = None,
    ) -> None:
        """:func:`interleave` the modes (``fn(mode, *args)`` builds one's
        runner), a record per mode: ``time`` the mean seconds per step on the
        ratio's clock times ``scale`` (in ``unit``), ``throughput`` ``items``
        per second, and every sample in ``repetitions``."""
        reps, warmup = self.args.reps, self.args.warmup
        results = interleave(
            f"{self.script.stem}:{fn.__name__}",
            modes,
            args,
            reps=reps,
            warmup=warmup,
            threads=self.threads,
            tolerances=tolerances,
            local=local,
        )
        cpu = cpu_description()
        for mode, result in results.items():
            clock = result["ratio"]["clock"]
            seconds = float(
                np.mean([sample[f"{clock}_s"] for sample in result["samples"]])
            )
            figure = f"{prefix} {mode} {unit}"
            self.add(
                figure,
                mode=f"{prefix}: {mode}",
                time=seconds * scale,
                time_unit=f"{unit} ({clock} time, mean of {reps})",
                throughput=items / seconds,
                peak_memory_mb=result["memory"]["peak_above_baseline_mb"],
                data=dict(data),
                notes=notes,
                cpu=cpu,
                repetitions=result,
            )
            ratio = result["ratio"]
            if mode != ratio["to"]:
                self.ratios[f"{prefix} {mode} / {ratio['to']}"] = [
                    round(ratio[key], 4) for key in ("ratio", "low", "high")
                ]

    def infer_interleaved(
        self,
        fn: Callable[..., Any],
        modes: Sequence[str],
        inputs: Mapping[str, Sequence[torch.Tensor]],
        package: Path,
        *args: Any,
        prefix: str,
        notes: str,
        atol: float = 1e-5,
        rtol: float = 1e-4,
    ) -> None:
        """Per named input tuple, :meth:`interleaved` latency (ms per call,
        ``--iters`` calls a step) of each Python mode
        (``fn(mode, *args, package, inputs_path, name, iters)`` returns a
        :class:`CallRunner`) and of the package in the C++ runner
        (``"aoti-cpp"``), outputs checked within ``atol`` and ``rtol``."""
        iters = self.args.iters
        path = self.folder / "inputs.pt"
        torch.save({name: tuple(x) for name, x in inputs.items()}, path)
        runner = build_cpp_runner(self.folder / "runner")
        for name, x in inputs.items():
            tolerances = {mode: (atol, rtol) for mode in (*modes, "aoti-cpp")}
            tolerances[modes[0]] = (0.0, 0.0)
            cpp = CppRunner(runner, package, x, iters, self.threads)
            self.interleaved(
                fn,
                modes,
                *args,
                str(package),
                str(path),
                name,
                iters,
                prefix=f"{prefix} {name}",
                unit="ms/call",
                scale=1000 / iters,
                items=len(x[0]) * iters,
                tolerances=tolerances,
                data={"batch": len(x[0]), "calls_per_step": iters},
                notes=notes,
                local={"aoti-cpp": cpp},
            )

    def finish(self) -> int:
        """Write the table (not at smoke nor with ``--no-write``; to ``--out``
        at any budget), print the JSON line; 0."""
        command = f"python benchmarks/{self.script.name}"
        meta = benchmark_meta(command, self.args.budget, self.threads)
        meta["git_commit"] = self.commit
        out = getattr(self.args, "out", None)
        if out is not None:
            write_comparison(out, self.records, meta)
        elif self.args.budget != "smoke" and not self.args.no_write:
            write_comparison(comparison_path(self.project), self.records, meta)
        figures, ratios = self.figures, self.ratios
        print(
            json.dumps(
                {"project": self.project, **meta, "figures": figures, "ratios": ratios}
            )
        )
        return 0
