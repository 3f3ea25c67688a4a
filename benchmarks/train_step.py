"""Samples per second of one training step per architecture, and the app's one-crystal inference latency.

    python benchmarks/train_step.py [--batch N] [--steps 2] [--threads N] [--unet-channels 16] [--max-z 94]
        [--data NPZ] [--layouts] [--designs]

`--data` takes crystals from a `train.prepare` bundle instead of the built-in examples (no pymatgen needed,
as on the GPU machine). `--layouts` times only the shipped compact model's training step (joint loss + the
U-Net on the true density, and the VAE alone) in the default and the channels_last_3d memory format, on the CPU
in float32 and in bf16 autocast as well, and names the faster format.
`--designs` times only the designs of issue 11 §2 (`train/designs.py`): training GFLOP per sample and samples/s.

A training step is voxelization of a batch of single-cell placements (on the device), CrystalVAE forward,
the joint loss of eq. (2), backward and an AdamW step. Inference is encode (the mean) + decode + U-Net +
segmentation into atoms for one crystal. Runs on CUDA when available (batch 64), else CPU (batch 8).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from crystal_explorer.grid import GridSpec  # noqa: E402
from crystal_explorer.losses import joint_loss, kl_divergence, reconstruction_loss, segmentation_loss  # noqa: E402
from crystal_explorer.models import CrystalVAE, ModelConfig  # noqa: E402
from crystal_explorer.representation import batch_grids, pad_batch, place  # noqa: E402
from crystal_explorer.segment import atoms_from_scores  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def forward_flops(model: CrystalVAE, x: torch.Tensor) -> int | None:
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return None
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x, sample=False)
    return counter.get_total_flops()


LOSSES = {
    "joint+true": "eq. (2) + the U-Net's loss on the true density (stages 0-1 of the shipped models)",
    "joint": "eq. (2) alone: the U-Net runs once, on the decoding",
    "vae-only": "L_RE + β·KL: the U-Net frozen and not run (CPU fine-tuning stage)",
}


def _training_step(model: CrystalVAE, positions, numbers, grid: GridSpec, device: torch.device, loss: str, optimiser,
                   channels_last: bool = False, bf16: bool | None = None):
    """One step as a closure; bf16 autocast by default on CUDA only (`bf16=True` asks for it on the CPU too)."""
    bf16 = device.type == "cuda" if bf16 is None else bf16
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16)

    def step() -> None:
        x, species = batch_grids(positions, numbers, grid, model.config.density_scale)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with autocast:
            if loss == "vae-only":
                density, mean, log_var = model.autoencode(x)
                total = reconstruction_loss(density, x).mean() + 1e-3 * kl_divergence(mean.float(), log_var.float()).mean()
            else:
                total = joint_loss(model(x), x, species, beta=1e-3).total
                if loss == "joint+true":
                    total = total + 0.05 * segmentation_loss(model.segment(x), species).mean()
        optimiser.zero_grad(set_to_none=True)
        total.backward()
        optimiser.step()

    return step


def train_flops(model: CrystalVAE, positions, numbers, grid: GridSpec, device: torch.device, loss: str) -> int | None:
    """FLOPs of one training step (forward and backward) per sample."""
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return None
    model.train()
    optimiser = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    counter = FlopCounterMode(display=False)
    with counter:
        _training_step(model, positions[:1], numbers[:1], grid, device, loss, optimiser)()
    return counter.get_total_flops()


def train_rate(model: CrystalVAE, positions, numbers, grid: GridSpec, steps: int, device: torch.device,
               loss: str = "joint", channels_last: bool = False, bf16: bool | None = None) -> float:
    model.train()
    if channels_last:
        model.to(memory_format=torch.channels_last_3d)
    model.unet.requires_grad_(loss != "vae-only")
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    step = _training_step(model, positions, numbers, grid, device, loss, optimiser, channels_last, bf16)
    step()  # warm-up
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * positions.shape[0] / (time.perf_counter() - start)


def inference_latency(model: CrystalVAE, positions, numbers, grid: GridSpec, device: torch.device, repeats: int) -> float:
    model.eval()
    x, _ = batch_grids(positions[:1], numbers[:1], grid, model.config.density_scale)
    times = []
    with torch.no_grad():
        for _ in range(repeats + 1):
            _sync(device)
            start = time.perf_counter()
            mean, _ = model.encode(x)
            condition = model.max_density(x) if model.config.conditional else None
            density = model.decode(mean, condition)
            scores = model.segment(density)
            atoms_from_scores(scores[0].float().cpu().numpy(), grid, density[0, 0].float().cpu().numpy())
            _sync(device)
            times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def _crystals(path: str | None, limit: int = 512) -> list:
    if path is None:
        from crystal_explorer.structures import crystal_arrays, example_structures

        return [crystal_arrays(s, n) for n, s in example_structures().items()]
    from crystal_explorer.arrays import CrystalBundle

    bundle = CrystalBundle.load(path)
    return [bundle[i] for i in range(min(limit, len(bundle)))]


def _layouts(positions, numbers, grid: GridSpec, args, device: torch.device) -> None:
    """Memory format × precision (on the CPU float32, the default, beside bf16 autocast; on CUDA bf16 only)."""
    print("memory format | precision | train samples/s (joint+true, compact) | train samples/s (VAE only, U-Net frozen)")
    print("--- | --- | --- | ---")
    rates = {}
    for bf16 in ((True,) if device.type == "cuda" else (False, True)):
        for channels_last in (False, True):
            row = []
            for loss in ("joint+true", "vae-only"):
                torch.manual_seed(0)
                model = CrystalVAE(ModelConfig(latent_size=args.latent_size, max_z=args.max_z,
                                               unet_channels=args.unet_channels)).to(device)
                row.append(train_rate(model, positions, numbers, grid, args.steps, device, loss, channels_last, bf16))
            rates[bf16, channels_last] = row[0]
            print(f"{'channels_last_3d' if channels_last else 'contiguous (NCDHW)'} | {'bf16 autocast' if bf16 else 'float32'} | "
                  f"{row[0]:.1f} | {row[1]:.1f}")
    bf16 = device.type == "cuda"
    print(f"best_channels_last={str(rates[bf16, True] > 1.05 * rates[bf16, False]).lower()}")


def _designs(positions, numbers, grid: GridSpec, args, device: torch.device) -> None:
    from train.designs import DESIGNS

    header = ("design", "what", "parameters", "train GFLOP/sample (fwd + bwd)", "train samples/s")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for design in DESIGNS.values():
        torch.manual_seed(0)
        config = ModelConfig(**{"latent_size": args.latent_size, "max_z": args.max_z, **design.model})
        model = CrystalVAE(config).to(device)
        n_params = sum(p.numel() for p in model.parameters())
        flops = train_flops(model, positions, numbers, grid, device, design.step_loss)
        rate = train_rate(model, positions, numbers, grid, args.steps, device, design.step_loss)
        gflop = f"{flops / 1e9:.1f}" if flops is not None else "n/a"
        print(f"{design.name} | {design.what} | {n_params / 1e6:.2f} M | {gflop} | {rate:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, help="default: 64 on CUDA, 8 on CPU")
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--latent-size", type=int, default=300)
    parser.add_argument("--unet-channels", type=int, default=16)
    parser.add_argument("--max-z", type=int, default=94)
    parser.add_argument("--data", help="a .npz bundle from `python -m train.prepare` (default: built-in examples)")
    parser.add_argument("--layouts", action="store_true", help="only compare memory formats (see above)")
    parser.add_argument("--designs", action="store_true", help="only the designs of issue 11 §2 (see above)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch = args.batch or (64 if device.type == "cuda" else 8)
    grid = GridSpec()
    rng = np.random.default_rng(0)
    placements = [p for c in _crystals(args.data) if (p := place(c, "single", rng, grid)) is not None]
    placements = (placements * (batch // len(placements) + 1))[:batch]
    positions, numbers = (t.to(device) for t in pad_batch(placements))
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device {name}; batch {batch}; latent {args.latent_size}; U-Net channels {args.unet_channels}; "
          f"max_z {args.max_z}; {args.steps} timed steps after one warm-up")
    if args.layouts:
        _layouts(positions, numbers, grid, args, device)
        return
    if args.designs:
        _designs(positions, numbers, grid, args, device)
        return
    header = ("architecture", "parameters", "forward GFLOP/sample", "train samples/s", "inference latency (ms)")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for architecture in ("paper", "compact"):
        torch.manual_seed(0)
        config = ModelConfig(architecture=architecture, latent_size=args.latent_size, max_z=args.max_z,
                             unet_channels=args.unet_channels)
        model = CrystalVAE(config).to(device)
        n_params = sum(p.numel() for p in model.parameters())
        x, _ = batch_grids(positions[:1], numbers[:1], grid, config.density_scale)
        model.eval()
        flops = forward_flops(model, x)
        rate = train_rate(model, positions, numbers, grid, args.steps, device)
        latency = inference_latency(model, positions, numbers, grid, device, repeats=3)
        gflop = f"{flops / 1e9:.2f}" if flops is not None else "n/a"
        print(f"{architecture} | {n_params / 1e6:.2f} M | {gflop} | {rate:.2f} | {1e3 * latency:.0f}")
    print()
    print("Training losses of the compact model (the cost side of issue 11's quality-per-compute comparison):")
    header = ("loss", "what", "train GFLOP/sample (fwd + bwd)", "train samples/s")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for loss, what in LOSSES.items():
        torch.manual_seed(0)
        model = CrystalVAE(ModelConfig(latent_size=args.latent_size, max_z=args.max_z,
                                       unet_channels=args.unet_channels)).to(device)
        rate = train_rate(model, positions, numbers, grid, args.steps, device, loss)
        flops = train_flops(model, positions, numbers, grid, device, loss)
        gflop = f"{flops / 1e9:.1f}" if flops is not None else "n/a"
        print(f"{loss} | {what} | {gflop} | {rate:.2f}")


if __name__ == "__main__":
    main()
