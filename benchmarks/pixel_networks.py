"""The two Q-networks of the pixel DQN chapter: size and the cost of one update.

    .venv/bin/python benchmarks/pixel_networks.py [--device cpu] [--batch 128]

Prints one JSON line: for the Nature-DQN and the lecture's network, the
parameter count and the median time of one forward, backward and optimizer
step over a batch of 3-frame 80x80 stacks, on the same device.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from rlbook.chapters.dqn_pixels import ARCHITECTURES, PixelQNetwork
from rlbook.device import select_device


def time_update(net: PixelQNetwork, batch: torch.Tensor, repeats: int) -> float:
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    times = []
    for i in range(repeats + 3):  # three warm-ups
        if batch.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss = net(batch).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if batch.device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    device = select_device(args.device)
    torch.manual_seed(0)
    batch = torch.randint(
        0, 256, (args.batch, 3, 80, 80), dtype=torch.uint8, device=device
    )
    record: dict[str, object] = {
        "device": str(device),
        "detail": (
            torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else f"{platform.machine()}, {os.cpu_count()} cpus"
        ),
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "torch": torch.__version__,
    }
    for arch in ARCHITECTURES:
        net = PixelQNetwork(3, 2, arch).to(device)
        record[f"{arch}_params"] = sum(p.numel() for p in net.parameters())
        record[f"{arch}_update_ms"] = round(
            1e3 * time_update(net, batch, args.repeats), 3
        )
    record["lecture_over_nature"] = round(
        record["lecture_update_ms"] / record["nature_update_ms"],
        2,  # type: ignore[operator]
    )
    print(json.dumps(record))


if __name__ == "__main__":
    main()
