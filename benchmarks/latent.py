"""Latency of decode + segment (+ atoms) for one z and for a batch of 32, on CPU and on CUDA when present.

    python benchmarks/latent.py [--checkpoint checkpoints/single_cell]

The reference is the same work done one latent at a time (the batch row shows what batching buys).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a plain script from anywhere
from crystal_explorer.latent import CrystalModel  # noqa: E402


def timed(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def measure(model: CrystalModel, repeats: int) -> tuple[float, float, float]:
    """Seconds for one latent, for a batch of 32, and for 32 latents decoded one at a time."""
    z = np.random.default_rng(0).standard_normal((32, model.latent_size)).astype(np.float32)
    one = timed(lambda: model.decode(z[:1]), repeats)
    batch = timed(lambda: model.decode(z), max(1, repeats // 2))
    loop = timed(lambda: [model.decode(z[i : i + 1]) for i in range(8)], 1) * 4  # reference: one at a time
    return one, batch, loop


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default=str(Path(__file__).resolve().parents[1] / "checkpoints" / "single_cell"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"{'device':8} {'what':38} {'seconds':>9} {'per latent (ms)':>16}")
    for device in devices:
        one, batch, loop = measure(CrystalModel.from_checkpoint(args.checkpoint, device=device), args.repeats)
        print(f"{device:8} {'decode + segment + atoms, 1 latent':38} {one:9.3f} {1000 * one:16.1f}")
        print(f"{device:8} {'same, batch of 32':38} {batch:9.3f} {1000 * batch / 32:16.1f}")
        print(f"{device:8} {'reference: 32 latents one at a time':38} {loop:9.3f} {1000 * loop / 32:16.1f}")
        print(f"{device:8} batching speed-up: {loop / batch:.1f}x")


if __name__ == "__main__":
    main()
