"""Principal directions of the latent space: the axes along which the training crystals' encodings spread most.

Sliders on single latent coordinates barely move a decoding (each carries a small share of the spread);
the eigenvectors of the aggregate prior's covariance Σ = L Lᵀ (`crystal_explorer.prior`), ordered by
their variance, are the directions in which the training crystals differ most. A slider value u along
direction k moves z by u · √λ_k · v_k: u counts standard deviations of the training encodings.

`describe_directions` labels each direction by what it changes most in the decodings ("mean Z ↑, atom
count ↓"), measured by decoding a sample moved both ways along it; `python -m crystal_explorer.directions
--checkpoint FOLDER` stores that as FOLDER/directions.json, which the app's sliders read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from crystal_explorer.errors import CrystalExplorerError
from crystal_explorer.prior import LatentPrior


class Directions(NamedTuple):
    """A centre (L,), unit directions (K, L) as rows and the spread σ (K,) along each, most spread first."""

    centre: np.ndarray
    vectors: np.ndarray
    spread: np.ndarray

    @classmethod
    def of_prior(cls, prior: LatentPrior, k: int) -> Directions:
        """The k principal directions of a Gaussian prior N(μ, L Lᵀ)."""
        covariance = prior.scale_tril @ prior.scale_tril.T
        values, vectors = np.linalg.eigh(covariance)  # ascending
        order = np.argsort(values)[::-1][:k]
        vectors = vectors[:, order].T
        # an eigenvector's sign is arbitrary (it may differ between LAPACK builds): fix it, largest component
        # positive, so that a slider's + end and the stored "↑"/"↓" labels (directions.json) agree everywhere
        largest = vectors[np.arange(len(vectors)), np.abs(vectors).argmax(1)]
        vectors = vectors * np.where(largest < 0, -1.0, 1.0)[:, None]
        return cls(prior.mean.copy(), vectors.copy(), np.sqrt(np.clip(values[order], 0, None)))

    @classmethod
    def of_axes(cls, centre: np.ndarray, spread: np.ndarray, dims: list[int]) -> Directions:
        """Single latent coordinates `dims` as directions (a model without a fitted prior)."""
        vectors = np.zeros((len(dims), len(centre)))
        vectors[np.arange(len(dims)), dims] = 1.0
        return cls(np.asarray(centre, float), vectors, np.asarray(spread, float)[dims])

    def coordinates(self, z: np.ndarray) -> np.ndarray:
        """Where a latent (L,) sits along each direction, in σ: (K,)."""
        return self.vectors @ (np.asarray(z, float) - self.centre) / self.spread

    def moved(self, z: np.ndarray, values: np.ndarray) -> np.ndarray:
        """z with its coordinates along the directions set to `values` (K,) in σ, the rest unchanged: (L,) float32."""
        shift = (np.asarray(values, float) - self.coordinates(z)) * self.spread
        return (np.asarray(z, float) + shift @ self.vectors).astype(np.float32)

    def variance_share(self, prior: LatentPrior) -> np.ndarray:
        """The fraction (K,) of the prior's total variance that each direction carries."""
        return self.spread**2 / float((prior.scale_tril**2).sum())


# --- what each direction changes ------------------------------------------------------------------
DESCRIPTIONS_FILE = "directions.json"
QUANTITIES = ("mean Z", "atom count", "NN distance", "peak density")  # NN distance: mean nearest-neighbour distance
UNITS = ("Z", "atoms", "Å", "Z units")
# the smallest spread a quantity is standardised by: its resolution, so that a quantity that happens not to
# vary over the sample (every draw with 8 atoms) does not turn a tiny change into an infinite one
RESOLUTION = np.array([1.0, 1.0, 0.1, 1.0])
THRESHOLD = 0.25  # a change under a quarter of the sample's spread is "little change"


def measure(decoded) -> np.ndarray:
    """The quantities (Q,) of one decoding (`crystal_explorer.latent.Decoded`), in QUANTITIES' order and
    UNITS: mean atomic number, atom count, mean nearest-neighbour distance (Å; NaN below two atoms) and
    peak density (Z units). Mean Z is NaN without atoms."""
    from crystal_explorer.metrics import nearest_neighbour_distances

    z = np.asarray(decoded.atoms.atomic_numbers, float)
    nn = nearest_neighbour_distances(decoded.atoms.positions)
    return np.array([z.mean() if len(z) else np.nan, float(len(z)), nn.mean() if len(nn) else np.nan,
                     float(np.max(decoded.density))])


def label_of(standardised: np.ndarray, top: int = 2, threshold: float = THRESHOLD) -> str:
    """'mean Z ↑, atom count ↓': the `top` largest standardised changes (Q,) of a + move over `threshold`."""
    order = np.argsort(-np.abs(standardised), kind="stable")[:top]
    parts = [f"{QUANTITIES[q]} {'↑' if standardised[q] > 0 else '↓'}" for q in order if abs(standardised[q]) >= threshold]
    return ", ".join(parts) or "little change"


@dataclass(frozen=True)
class DirectionEffects:
    """What moving along each principal direction does to the decodings, measured over a sample.

    change (K, Q): mean over the sample of quantity(z + step·σ_k·v_k) − quantity(z − step·σ_k·v_k), in
    UNITS; spread (Q,): the quantities' standard deviation over the unmoved sample (floored at RESOLUTION);
    sigma (K,): each direction's σ when measured, to tell a stale file from a current one.
    """

    change: np.ndarray
    spread: np.ndarray
    labels: tuple[str, ...]
    sigma: np.ndarray
    n_samples: int
    step: float
    seed: int
    max_z: float | None = None

    @property
    def standardised(self) -> np.ndarray:
        """change (K, Q) in units of the sample's spread."""
        return self.change / self.spread

    def matches(self, directions: Directions) -> bool:
        """Whether these effects were measured on `directions` (the same σ along at least as many)."""
        k = len(directions.spread)
        return len(self.sigma) >= k and np.allclose(self.sigma[:k], directions.spread, rtol=1e-3)

    def to_json(self) -> dict:
        return {"labels": list(self.labels), "quantities": list(QUANTITIES), "units": list(UNITS),
                "change": np.round(self.change, 4).tolist(), "spread": np.round(self.spread, 4).tolist(),
                "standardised": np.round(self.standardised, 3).tolist(), "sigma": self.sigma.tolist(),
                "n_samples": self.n_samples, "step_sigma": self.step, "seed": self.seed, "max_z": self.max_z,
                "threshold": THRESHOLD}

    @classmethod
    def from_json(cls, data: dict) -> DirectionEffects:
        change, spread = np.asarray(data["change"], float), np.asarray(data["spread"], float)
        labels, sigma = tuple(str(s) for s in data["labels"]), np.asarray(data["sigma"], float)
        if change.ndim != 2 or change.shape != (len(labels), len(QUANTITIES)) or spread.shape != (len(QUANTITIES),) \
                or sigma.shape != (len(labels),):
            raise CrystalExplorerError("the direction effects do not hold one row per direction and quantity")
        return cls(change, spread, labels, sigma, int(data["n_samples"]), float(data["step_sigma"]),
                   int(data["seed"]), data.get("max_z"))

    def save(self, folder: str | Path) -> Path:
        from crystal_explorer.checkpoint import atomic_write

        path = effects_file(folder)
        # one key a line, each value on its line: small enough to read and to diff
        lines = [f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}" for key, value in self.to_json().items()]
        atomic_write(path, ("{\n" + ",\n".join(lines) + "\n}\n").encode())
        return path

    @classmethod
    def load(cls, folder: str | Path) -> DirectionEffects | None:
        """The effects stored in `folder`, None when absent or unreadable (the caller then labels without them)."""
        return cls.read(effects_file(folder))

    @classmethod
    def read(cls, path: str | Path) -> DirectionEffects | None:
        """The effects in the file `path`, None when absent or unreadable."""
        try:
            return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError, CrystalExplorerError):
            return None


def effects_file(folder: str | Path) -> Path:
    """Where a checkpoint folder keeps its direction effects."""
    return Path(folder) / DESCRIPTIONS_FILE


def describe_directions(model, directions: Directions, n_samples: int = 16, step: float = 2.0, seed: int = 0,
                        max_z: float | None = None, progress: bool = False) -> DirectionEffects:
    """Measure what each direction changes: decode `n_samples` draws of the model's default prior (seeded)
    moved by −step and +step σ along each direction, segment them as the model does, and average the
    difference of `measure` between the two (pairs where a quantity is undefined on either side are left
    out). `model` is a `crystal_explorer.latent.CrystalModel` (or anything with `draw` and `decode`);
    `max_z` is the conditional model's target."""
    from tqdm import tqdm

    latents = model.draw(n_samples, seed).astype(np.float64)  # (n, L)
    base = np.stack([measure(d) for d in model.decode(latents.astype(np.float32), max_z=max_z)])  # (n, Q)
    spread = np.maximum(np.nan_to_num(np.nanstd(base, 0)), RESOLUTION)
    change = np.zeros((len(directions.spread), len(QUANTITIES)))
    for k in tqdm(range(len(directions.spread)), desc="directions", unit=" direction", disable=not progress):
        shift = step * directions.spread[k] * directions.vectors[k]
        moved = np.concatenate([latents - shift, latents + shift]).astype(np.float32)  # (2n, L)
        measured = np.stack([measure(d) for d in model.decode(moved, max_z=max_z)])
        difference = measured[n_samples:] - measured[:n_samples]  # (n, Q)
        defined = np.isfinite(difference)
        change[k] = np.where(defined, difference, 0).sum(0) / np.maximum(defined.sum(0), 1)
    labels = tuple(label_of(row / spread) for row in change)
    return DirectionEffects(change, spread, labels, np.asarray(directions.spread, float).copy(), n_samples,
                            float(step), seed, max_z)


def main(argv: list[str] | None = None) -> int:
    """`python -m crystal_explorer.directions --checkpoint FOLDER`: write FOLDER/directions.json."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m crystal_explorer.directions", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a model folder with a fitted latent prior")
    parser.add_argument("-k", type=int, default=8, help="how many principal directions to describe (the app shows 8)")
    parser.add_argument("--samples", type=int, default=16, help="draws of the aggregate prior to move")
    parser.add_argument("--step", type=float, default=2.0, help="how far to move each way, in σ of the direction")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-z", type=float, default=30.0, help="the conditional model's target max Z (the app's default)")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    from crystal_explorer.latent import CrystalModel

    try:
        model = CrystalModel.from_checkpoint(args.checkpoint, args.device)
        if model.prior is None:
            raise CrystalExplorerError(f"{args.checkpoint} has no fitted latent prior (python -m train.fit_prior)")
        directions = Directions.of_prior(model.prior, args.k)
        effects = describe_directions(model, directions, args.samples, args.step, args.seed,
                                      args.max_z if model.conditional else None, progress=True)
        path = effects.save(args.checkpoint)
    except (CrystalExplorerError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for k, label in enumerate(effects.labels):
        print(f"direction {k + 1}: {label}")
    print(f"→ {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
