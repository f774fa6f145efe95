"""The four projects' execution modes on one device, in one process: one JSON.

    RLBOOK_DATA=.gpu/data python benchmarks/projects_gpu.py --device cuda
    RLBOOK_DATA=/work/shared/data python benchmarks/projects_gpu.py --stage-data .gpu/data

Training and inference modes of the CPU tables, interleaved, each step
between two device synchronisations; ``benchmarks/projects.md`` says how.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import statistics
import sys
import time
import traceback
from contextlib import nullcontext
from pathlib import Path

os.environ.setdefault(
    "TORCHINDUCTOR_COMPILE_THREADS", str(min(16, os.cpu_count() or 1))
)

import harness
import torch

from rlbook.checkpoint import atomic_write
from rlbook.paths import artifacts_dir, data_dir, repo_root
from rlbook.projects.shipping import load_model
from rlbook.seeding import stream_seed, torch_stream

DATA_FILES = (  # all this script reads: 9.0 MB of the shared subsets
    "MNIST/raw/train-images-idx3-ubyte.gz",
    "MNIST/raw/train-labels-idx1-ubyte.gz",
    "cifar-10-batches-bin/test_batch.bin",  # ResNet trains on these 846 (timing only)
    "aclImdb_subset.tar.gz",
)
BUDGETS = {  # reps (at least min_reps unless capped), warmup, inference calls a step
    "full": {"reps": 10, "min_reps": 5, "warmup": 2, "iters": 50, "cap_s": 20.0},
    "smoke": {"reps": 2, "min_reps": 2, "warmup": 1, "iters": 2, "cap_s": 5.0},
}
STEPS = {  # minibatch steps a training sample: full, smoke
    "dqn": (200, 5),
    "vae": (20, 2),
    "sentiment": (5, 2),
    "resnet": (5, 1),
}


def stage_data(folder: Path) -> int:
    """Copy DATA_FILES (and their SHA256SUMS lines) from RLBOOK_DATA to folder."""
    source, total = data_dir(), 0
    for name in DATA_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, folder / name)
        total += (folder / name).stat().st_size
    sums = source / "SHA256SUMS"
    if sums.is_file():
        lines = [
            ln
            for ln in sums.read_text().splitlines()
            if ln.split()[-1].lstrip("*").removeprefix("./") in DATA_FILES
        ]
        (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    print(f"staged {len(DATA_FILES)} files, {total / 1e6:.1f} MB, in {folder}")
    return total


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()


class Runner:
    """A mode: ``step()`` is the timed work, ``outputs()`` the checked tensors."""

    def __init__(self, step, outputs, compiled: str | None = None) -> None:
        self.step, self.outputs, self.compiled = step, outputs, compiled


def infer_runners(model, inputs: dict, iters: int, fullgraph: bool = True) -> dict:
    """``{batch name: {"eager": Runner, "torch.compile": Runner}}``."""
    compiled = torch.compile(model, fullgraph=fullgraph, dynamic=False)
    out = {}
    for name, args in inputs.items():
        out[name] = {}
        for mode, fn in (("eager", model), ("torch.compile", compiled)):

            def step(fn=fn, args=args):
                with torch.no_grad():
                    for _ in range(iters):
                        fn(*args)

            def outputs(fn=fn, args=args):
                with torch.no_grad():
                    return fn(*args)

            what = f"fullgraph={fullgraph}, dynamic=False" if fn is compiled else None
            out[name][mode] = Runner(step, outputs, what)
    return out


def time_modes(runners: dict, tolerances: dict, device, settings: dict) -> dict:
    """Check, warm up and time ``runners`` interleaved; the first is the baseline.
    A mode other than the first that fails its check or first step records its
    error and is left out of the timing."""
    rec, reference, cuda, live = {}, None, device.type == "cuda", {}
    for mode, runner in runners.items():
        try:
            start = time.perf_counter()
            outs = [t.detach().float().cpu() for t in harness._leaves(runner.outputs())]
            check_s = time.perf_counter() - start
            reference = reference or outs
            start = time.perf_counter()
            runner.step()
            sync(device)
            first_s = time.perf_counter() - start
            for _ in range(settings["warmup"] - 1):
                runner.step()
        except Exception as error:
            if not live:  # the baseline itself failed: nothing to compare with
                raise
            traceback.print_exc()
            rec[mode] = {"error": f"{type(error).__name__}: {error}"[:2000]}
            continue
        live[mode] = runner
        rec[mode] = {
            "check_call_s": check_s,
            "first_call_s": first_s,
            "compile_s": check_s + first_s,  # both first calls: they compile
            "same_computation": harness.compare_outputs(
                outs, reference, *tolerances.get(mode, (1e-4, 1e-4))
            ),
            "compiled": runner.compiled,
            "samples_s": [],
            "peak_mb": [],
            "peak_above_start_mb": [],
        }
    began, rounds = time.perf_counter(), 0
    while rounds < settings["reps"] and (
        rounds < settings["min_reps"] or time.perf_counter() - began < settings["cap_s"]
    ):
        for mode, runner in live.items():
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
                base = torch.cuda.memory_allocated(device)
            sync(device)
            start = time.perf_counter()
            runner.step()
            sync(device)
            rec[mode]["samples_s"].append(time.perf_counter() - start)
            if cuda:
                peak = torch.cuda.max_memory_allocated(device)
                rec[mode]["peak_mb"].append(peak / 2**20)
                rec[mode]["peak_above_start_mb"].append((peak - base) / 2**20)
        rounds += 1
    eager = rec[next(iter(live))]["samples_s"]
    for mode in live:
        r = rec[mode]
        r["median_s"] = statistics.median(r["samples_s"])
        r["median_ratio"] = r["median_s"] / statistics.median(eager)
        r["ratio"] = harness._interval(r["samples_s"], eager)
        for key in ("peak_mb", "peak_above_start_mb"):
            r[key] = max(r[key]) if r[key] else None
    return {"capped": rounds < settings["reps"], "reps": rounds, "modes": rec}


def project_dqn(device, budget, steps, iters):
    import dqn_port_modes as cpu

    from rlbook.chapters.dqn_state import td_loss

    config, buffer = (
        cpu.PortConfig(),
        cpu.fill_buffer(10_000 if budget == "full" else 500, 0),
    )

    def runner(mode):
        q_net = cpu._network(0).to(device)
        target = copy.deepcopy(q_net)
        replay = copy.copy(buffer)
        for key in ("obs", "next_obs", "action", "reward", "terminated"):
            setattr(replay, key, getattr(buffer, key).to(device))
        replay.device, replay.generator = device, torch_stream(0, "replay", device)
        check = replay.sample(config.batch_size)
        opt = torch.optim.Adam(q_net.parameters(), lr=config.learning_rate)
        forward = (
            torch.compile(q_net, fullgraph=True) if mode == "torch.compile" else q_net
        )
        dtype = torch.bfloat16 if mode == "bf16 autocast" else None

        def step():
            for _ in range(steps):
                with autocast(device, dtype):
                    loss, _ = td_loss(
                        forward,
                        target,
                        replay.sample(config.batch_size),
                        gamma=config.gamma,
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

        def outputs():
            with torch.no_grad(), autocast(device, dtype):
                return forward(check.obs), td_loss(
                    forward, target, check, gamma=config.gamma
                )[0]

        return Runner(
            step, outputs, "Q-network, fullgraph=True" if forward is not q_net else None
        )

    states = torch.randn(64, 4, generator=torch.Generator().manual_seed(0)).to(device)
    infer = infer_runners(
        cpu._network(0).eval().to(device),
        {"batch 1": (states[:1],), "batch 64": (states,)},
        iters,
    )
    return (
        {m: runner(m) for m in cpu.TRAIN_MODES},
        cpu.TOLERANCES,
        infer,
        f"{steps} learner steps, batch {config.batch_size}",
    )


def project_vae(device, budget, steps, iters):
    import vae_modes as cpu

    from rlbook.chapters.vae_mnist import (
        build_vae,
        load_mnist,
        to_input,
        train_epoch,
        vae_config,
        vae_loss,
    )

    config = vae_config("full")
    images = load_mnist("train").images
    part = images[: steps * config.batch_size].to(device)
    check = to_input(images[: cpu.CHECK_BATCH]).to(device)

    def runner(mode):
        torch.manual_seed(stream_seed(0, "init"))
        model = build_vae(config).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        if mode == "torch.compile":  # as the CPU script: the encoder and the decoder
            model.encoder = torch.compile(model.encoder, fullgraph=True)
            model.decoder = torch.compile(model.decoder, fullgraph=True)
        dtype, gen = (
            torch.bfloat16 if mode == "bf16 autocast" else None,
            torch_stream(0, "data", device),
        )

        def step():
            train_epoch(
                model,
                part,
                opt,
                generator=gen,
                device=device,
                batch_size=config.batch_size,
                autocast_dtype=dtype,
            )

        def outputs():
            with torch.no_grad():
                with autocast(device, dtype):
                    logits, mu, logvar = model(check)
                return (
                    logits,
                    mu,
                    logvar,
                    vae_loss(logits.float(), check, mu.float(), logvar.float())[0],
                )

        return Runner(
            step,
            outputs,
            "encoder and decoder, fullgraph=True" if mode == "torch.compile" else None,
        )

    shipped = load_model(artifacts_dir() / "vae-mnist", kind="vae-mnist").model.to(
        device
    )
    codes = torch.randn(64, shipped.latent, generator=torch.Generator().manual_seed(0))
    codes = codes.to(device)
    infer = infer_runners(
        cpu._decode(shipped), {"batch 1": (codes[:1],), "batch 64": (codes,)}, iters
    )
    return (
        {m: runner(m) for m in cpu.TRAIN_MODES},
        cpu.TOLERANCES,
        infer,
        f"{steps} minibatches of {config.batch_size} MNIST training images",
    )


def project_sentiment(device, budget, steps, iters):
    import sentiment_modes as cpu

    from rlbook.chapters.sentiment_imdb import (
        build_lstm,
        encode_texts,
        load_imdb,
        prepare_reviews,
        sentiment_config,
        train_lstm_epoch,
    )

    config = sentiment_config(budget)
    train, test = load_imdb("train"), load_imdb("test")
    split = prepare_reviews(
        train.texts, train.labels, test.texts, test.labels, config, 0
    )
    n = steps * config.batch_size
    tokens, lengths = split.train.tokens[:n], split.train.lengths[:n]
    labels = split.train_labels[:n]
    width = int(lengths[: cpu.CHECK_BATCH].max())
    check = (tokens[: cpu.CHECK_BATCH, :width].to(device), lengths[: cpu.CHECK_BATCH])

    def runner(mode):
        torch.manual_seed(stream_seed(0, "init"))
        model = build_lstm(config, len(split.vocabulary)).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        # As the CPU script: pack_padded_sequence breaks the graph, so no fullgraph.
        forward = torch.compile(model) if mode == "torch.compile" else model
        dtype = torch.bfloat16 if mode == "bf16 autocast" else None

        def step():
            torch.manual_seed(stream_seed(0, "dropout"))
            with autocast(device, dtype):
                train_lstm_epoch(
                    forward,
                    tokens.to(device),
                    lengths,
                    labels.to(device),
                    opt,
                    batch_size=config.batch_size,
                    device=device,
                    generator=torch.Generator().manual_seed(0),
                    grad_clip=config.grad_clip,
                )

        def outputs():
            model.eval()
            with torch.no_grad(), autocast(device, dtype):
                return forward(*check).float()

        return Runner(
            step,
            outputs,
            "whole model, fullgraph=False (packing breaks the graph)"
            if forward is not model
            else None,
        )

    shipped = load_model(artifacts_dir() / "sentiment-lstm", kind="sentiment-lstm")
    model = shipped.model.to(device)
    enc = encode_texts(
        test.texts[:32], shipped.extras["vocabulary"], shipped.extras["max_len"]
    )
    inputs = {
        "batch 1": (enc.tokens[:1].to(device), enc.lengths[:1]),
        "batch 32": (enc.tokens.to(device), enc.lengths),
    }
    return (
        {m: runner(m) for m in cpu.TRAIN_MODES},
        cpu.TOLERANCES,
        infer_runners(model, inputs, iters, fullgraph=False),
        f"{steps} Adam steps of {config.batch_size} reviews",
    )


def project_resnet(device, budget, steps, iters):
    import resnet_modes as cpu

    from rlbook.chapters.resnet_cifar import (
        build_resnet,
        load_cifar10,
        make_optimizer,
        normalize,
        resnet_config,
        train_epoch,
    )

    config = resnet_config(budget)
    recipe = config.train_config()
    images = load_cifar10("test")  # the staged split (timing only)
    n = steps * recipe.batch_size
    part, labels = images.images[:n].to(device), images.labels[:n].to(device)
    check = normalize(images.images[: cpu.CHECK_BATCH].to(device))

    def runner(mode):
        torch.manual_seed(stream_seed(0, "init"))
        model = build_resnet(config).to(device)
        cl = mode == "channels_last"
        if cl:
            model = model.to(memory_format=torch.channels_last)
        opt, sched = make_optimizer(model, recipe, 1000)
        forward = (
            torch.compile(model, fullgraph=True) if mode == "torch.compile" else model
        )
        dtype, gen = (
            torch.bfloat16 if mode == "bf16 autocast" else None,
            torch_stream(0, "data", device),
        )

        def step():
            train_epoch(
                forward,
                part,
                labels,
                opt,
                sched,
                recipe,
                gen,
                device=device,
                autocast_dtype=dtype,
                channels_last=cl,
            )

        def outputs():
            model.eval()
            x = check.contiguous(memory_format=torch.channels_last) if cl else check
            with torch.no_grad(), autocast(device, dtype):
                return forward(x).float()

        return Runner(
            step,
            outputs,
            "whole network, fullgraph=True" if forward is not model else None,
        )

    shipped = cpu._shipped(
        str(artifacts_dir() / "resnet18-cifar"), budget == "smoke"
    ).to(device)
    batch = normalize(images.images[:32].to(device))
    infer = infer_runners(
        shipped, {"batch 1": (batch[:1],), "batch 32": (batch,)}, iters
    )
    return (
        {m: runner(m) for m in cpu.TRAIN_MODES},
        cpu.TOLERANCES,
        infer,
        f"{steps} SGD steps of {recipe.batch_size} CIFAR-10 images (width {config.width})",
    )


PROJECTS = {
    "dqn": project_dqn,
    "vae": project_vae,
    "sentiment": project_sentiment,
    "resnet": project_resnet,
}


def run_project(name: str, device, budget: str) -> dict:
    settings = BUDGETS[budget]
    steps = STEPS[name][budget != "full"]
    start = time.perf_counter()
    torch._dynamo.reset()
    train, tolerances, infer, what = PROJECTS[name](
        device, budget, steps, settings["iters"]
    )
    out = {
        "train": {
            "unit": f"s/{what}",
            "steps": steps,
            **time_modes(train, tolerances, device, settings),
        }
    }
    for batch, runners in infer.items():
        out[f"infer {batch}"] = {
            "unit": f"s/{settings['iters']} calls",
            **time_modes(runners, {"torch.compile": (1e-3, 1e-3)}, device, settings),
        }
    out["wall_s"] = time.perf_counter() - start
    return out


def validate(record: dict) -> None:
    """Raise ValueError where a measured mode lacks its samples, median or the
    95% interval of its ratio to eager (what the pages show)."""
    for name, project in record["projects"].items():
        for section, part in project.items():
            if not isinstance(part, dict):
                continue
            for mode, r in part["modes"].items():
                if "error" in r:  # a mode that failed says so instead
                    continue
                ratio = r.get("ratio") or {}
                if not r.get("samples_s") or r.get("median_s") is None:
                    raise ValueError(f"{name} {section} {mode}: no samples")
                if not all(ratio.get(k) is not None for k in ("ratio", "low", "high")):
                    raise ValueError(f"{name} {section} {mode}: no ratio interval")
                if not ratio["low"] <= ratio["ratio"] <= ratio["high"]:
                    raise ValueError(f"{name} {section} {mode}: ratio outside interval")


def table(record: dict) -> str:
    lines = [
        f"{'project':10} {'section':15} {'mode':15} {'median s':>9} {'ratio [95%]':>20} "
        f"{'compile s':>9} {'peak MB':>8} ok"
    ]
    for name, proj in record["projects"].items():
        if "error" in proj:
            lines.append(f"{name:10} ERROR {proj['error'][:90]}")
            continue
        for section, sec in proj.items():
            if not isinstance(sec, dict):
                continue
            for mode, r in sec["modes"].items():
                if "error" in r:
                    lines.append(
                        f"{name:10} {section:15} {mode:15} ERROR {r['error'][:60]}"
                    )
                    continue
                ratio = r["ratio"]
                peak = "-" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"
                lines.append(
                    f"{name:10} {section:15} {mode:15} {r['median_s']:9.4f} "
                    f"{ratio['ratio']:6.2f} [{ratio['low']:.2f}, {ratio['high']:.2f}] "
                    f"{r['compile_s']:9.1f} {peak:>8} {r['same_computation']['passed']}"
                )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--budget", choices=tuple(BUDGETS), default="full")
    parser.add_argument("--projects", default=",".join(PROJECTS))
    parser.add_argument(
        "--out", type=Path, default=artifacts_dir() / "projects" / "gpu.json"
    )
    parser.add_argument(
        "--wall-cap",
        type=float,
        default=200.0,
        help="start no project after this many seconds",
    )
    parser.add_argument("--stage-data", type=Path, metavar="DIR")
    args = parser.parse_args()
    if args.stage_data:
        stage_data(args.stage_data)
        return 0
    torch.set_num_threads(1 if args.device == "cpu" else torch.get_num_threads())
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    device, began = torch.device(args.device), time.perf_counter()
    cuda = device.type == "cuda"
    if cuda and device.index is None:  # generators and parameters say cuda:0
        device = torch.device("cuda", torch.cuda.current_device())
    record = {
        "device": torch.cuda.get_device_name(device)
        if cuda
        else harness.cpu_description()["model"],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "budget": args.budget,
        "settings": BUDGETS[args.budget],
        "tf32": False,
        "data": list(DATA_FILES),
        "compile_threads": os.environ["TORCHINDUCTOR_COMPILE_THREADS"],
        "timing": "synchronize + perf_counter per sample"
        if cuda
        else "perf_counter (CPU)",
        "memory": "torch.cuda.max_memory_allocated, reset before each sample"
        if cuda
        else None,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        # a copy without .git (the GPU machine's) declares it: $RLBOOK_GIT_COMMIT
        "commit": harness.git_commit(repo_root()),
        "projects": {},
    }
    for name in args.projects.split(","):
        if time.perf_counter() - began > args.wall_cap:
            record["projects"][name] = {
                "error": f"skipped: past the {args.wall_cap:.0f} s cap"
            }
            continue
        print(f"[{time.perf_counter() - began:6.1f} s] {name}", flush=True)
        try:
            record["projects"][name] = run_project(name, device, args.budget)
        except Exception as error:  # one project's failure must not lose the others
            traceback.print_exc()
            record["projects"][name] = {"error": f"{type(error).__name__}: {error}"}
        # what is done survives a kill: the lease's timeout ends this process
        record["wall_s"] = time.perf_counter() - began
        text = json.dumps(record, indent=1).encode()
        atomic_write(args.out, lambda f, text=text: f.write(text))
    validate(record)
    atomic_write(args.out, lambda f: f.write(json.dumps(record, indent=1).encode()))
    print(table(record))
    return 0 if all("error" not in p for p in record["projects"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
