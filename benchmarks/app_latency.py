"""Latency of the library calls behind the app's interactions, against the issue's targets.

Times, on whatever device `CrystalModel` picks (GPU when present): the Reconstruct page after an upload
(parse + reconstruct + the figures it draws; with and without the refinement of the encoding, and the refinement
in float32 beside the checkpoint's precision; in one orientation, and in the checkpoint's consensus of orientations), one latent-slider move (decode + isosurface), and a
10-frame interpolation (decode + animation figure). A reference in the same run, one 16 → 16
channel 3×3×3 convolution over a 30³ grid in torch, puts the numbers in context of the machine's speed at
that moment (the machines these run on are shared), and the slider move is also timed with the eager networks
(no frozen traces, `crystal_explorer.inference`). The decode step is also split into its two (eager) networks.

    python -m benchmarks.app_latency [--checkpoint checkpoints/lattice] [--repeats 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pymatgen.io.cif import CifWriter

from crystal_explorer import plotting, report
from crystal_explorer.inference import FrozenParts
from crystal_explorer.latent import CrystalModel
from crystal_explorer.lattice import placed_lattice
from crystal_explorer.refine import resolved_precision
from crystal_explorer.structures import crystal_arrays, example_structures, structure_from_text

ROOT = Path(__file__).resolve().parents[1]


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first-call allocations and lazy imports are not what a user waits for on each move
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="checkpoints/lattice")
    parser.add_argument("--example", default="SrTiO3")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    model = CrystalModel.from_checkpoint(ROOT / args.checkpoint)
    cif = str(CifWriter(example_structures()[args.example])).encode()
    a = crystal_arrays(example_structures()["Si"], "Si")

    def with_precision(precision: str) -> CrystalModel:
        refinement = {**dataclasses.asdict(model.refinement), "precision": precision}
        return dataclasses.replace(model, metadata={**model.metadata, "refinement": refinement})

    def reconstruct_page(refine: bool = True, on: CrystalModel = model, orientations: int = 1) -> None:
        structure, _ = structure_from_text(cif, "cif")
        arrays = crystal_arrays(structure, args.example)
        rec = on.reconstruct(arrays, seed=0, refine=refine, orientations=orientations)
        p = rec.encoded.placement
        densities = {"input": rec.encoded.density, "decoded": rec.decoded.density}
        plotting.isosurface_figure(densities, plotting.separating_level(rec.encoded.density),
                                   atoms={"input": (p.positions, p.atomic_numbers),
                                          "decoded": (rec.decoded.atoms.positions, rec.decoded.atoms.atomic_numbers)}).to_json()
        plotting.slices_figure(densities, 15)
        plotting.parity_figure(rec.encoded.density, rec.decoded.density)
        report.compare_atoms(p.positions, p.atomic_numbers, rec.decoded.atoms.positions, rec.decoded.atoms.atomic_numbers)
        report.decoded_crystal(rec.decoded, model, placed_lattice(arrays.lattice, p.rotation))
        plotting.atoms_html({"input": plotting.CellView(arrays.lattice, arrays.frac_coords, arrays.atomic_numbers)})

    z = model.encode(crystal_arrays(example_structures()[args.example]), 0).mean
    zb = model.encode(a, 0).mean
    max_z = 30.0 if model.conditional else None

    eager = dataclasses.replace(model, frozen=FrozenParts(enabled=False))

    def slider_move(on: CrystalModel = model) -> None:
        moved = z.copy()
        moved[int(np.argmax(np.abs(z)))] += 0.5
        decoded = on.decode(moved, max_z=max_z)[0]
        plotting.isosurface_figure({"decoded": decoded.density}, 0.4 * float(decoded.density.max()))

    def interpolation() -> None:
        frames = model.interpolate(z, zb, 10, max_z=max_z)
        plotting.animation_figure([f.density for f in frames], 0.4 * float(frames[0].density.max()))

    grid = torch.randn(1, 16, 30, 30, 30, device=model.device)
    kernel = torch.randn(16, 16, 3, 3, 3, device=model.device)
    latent = torch.from_numpy(z[None]).float().to(model.device)
    condition = model.condition_for(max_z=max_z)

    @torch.no_grad()
    def density_network() -> torch.Tensor:
        return model.network.decode(latent, condition)

    density = density_network()

    @torch.no_grad()
    def segmentation_network() -> torch.Tensor:
        return model.network.segment(density)

    rows = [
        ("reference: one 16-channel conv3d on 30³", median_seconds(lambda: F.conv3d(grid, kernel, padding=1), args.repeats * 4), None),
        ("  part of a decode: density decoder network", median_seconds(density_network, args.repeats), None),
        ("  part of a decode: segmentation network", median_seconds(segmentation_network, args.repeats), None),
        ("reconstruct page, posterior mean (refine switched off)", median_seconds(lambda: reconstruct_page(False), args.repeats), 1.0),
        (f"reference: refined ({model.refinement.steps} steps) in float32", median_seconds(lambda: reconstruct_page(True, with_precision("float32")), args.repeats), None),
        (f"reconstruct page, refined (the default: {resolved_precision(model.refinement, model.device)})", median_seconds(reconstruct_page, args.repeats), 1.0),
        *([(f"reconstruct page, refined, consensus of {k} orientations (the checkpoint's)",
            median_seconds(lambda: reconstruct_page(orientations=k), args.repeats), None)]
          if (k := model.consensus.orientations) > 1 else []),
        ("reference: the same slider move with eager networks", median_seconds(lambda: slider_move(eager), args.repeats), None),
        ("one latent slider move (decode + isosurface)", median_seconds(slider_move, args.repeats), 0.3),
        ("10-frame interpolation (decode + animation)", median_seconds(interpolation, max(1, args.repeats // 2)), 3.0),
    ]
    print(f"checkpoint {args.checkpoint} on {model.device.type}, example {args.example}, median of {args.repeats}")
    print(f"{'step':<55} {'seconds':>8} {'target':>7}  ok   (torch threads: {torch.get_num_threads()})")
    for name, seconds, target in rows:
        verdict = "" if target is None else ("yes" if seconds <= target else "NO")
        print(f"{name:<55} {seconds:8.3f} {'' if target is None else f'{target:.1f}':>7}  {verdict}")


if __name__ == "__main__":
    main()
