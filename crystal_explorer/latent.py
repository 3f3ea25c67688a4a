"""The latent space of a trained model: encode, decode, reconstruct, sample, interpolate, traverse, rank, score.

`CrystalModel` is the one object the app, the command line and evaluation use. Densities it returns are
peak-normalised (a lone atom peaks at its Z); positions are in Å in the cube frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from crystal_explorer.arrays import CrystalArrays
from crystal_explorer.cell import CellHead, lattice_from_parameters, orient_cell
from crystal_explorer.checkpoint import load_model
from crystal_explorer.consensus import ConsensusConfig, DecodedAtoms, Merged, merge, to_reference_frame
from crystal_explorer.density_fit import (
    MergedSplit,
    SpeciesRule,
    fit_amplitudes,
    species_from_amplitudes,
    split_merged_atoms,
)
from crystal_explorer.errors import CrystalExplorerError
from crystal_explorer.grid import GridSpec
from crystal_explorer.inference import FrozenParts
from crystal_explorer.metrics import Comparison, compare
from crystal_explorer.models import CrystalVAE
from crystal_explorer.prior import PRIORS, LatentPrior
from crystal_explorer.refine import RefineConfig, refine_latents
from crystal_explorer.representation import Placement, batch_grids, pad_batch, place
from crystal_explorer.segment import Atoms, atoms_from_species_grid
from crystal_explorer.voxel import visible_atoms


class Decoded(NamedTuple):
    """One decoding: latent (L,), density (n, n, n) in Z units, species grid (n, n, n) of Z, atoms."""

    latent: np.ndarray
    density: np.ndarray
    species: np.ndarray
    atoms: Atoms


class Encoded(NamedTuple):
    """A crystal placed in the cube and its encoding: input density (n, n, n) in Z units, the true species grid."""

    placement: Placement
    density: np.ndarray
    species: np.ndarray
    mean: np.ndarray
    log_var: np.ndarray


class Reconstruction(NamedTuple):
    encoded: Encoded
    decoded: Decoded
    comparison: Comparison


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation between two latent vectors (falls back to linear when they are parallel)."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    cos = np.clip(np.dot(a, b) / max(na * nb, 1e-12), -1, 1)
    omega = np.arccos(cos)
    if omega < 1e-6:
        return (1 - t) * a + t * b
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


@dataclass
class CrystalModel:
    """A trained model with its representation, ready to use on CPU or GPU."""

    network: CrystalVAE
    metadata: dict
    device: torch.device
    grid: GridSpec = GridSpec()
    prior: LatentPrior | None = None  # the aggregate posterior of the training crystals, when fitted
    frozen: FrozenParts = field(default_factory=FrozenParts)  # traced decoder and U-Net on the CPU
    cell_head: CellHead | None = None  # latent → cell parameters, single-cell models (`crystal_explorer.cell`)

    @classmethod
    def from_checkpoint(cls, folder: str | Path, device: str | None = None) -> CrystalModel:
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        network, meta = load_model(folder, device)
        prior = LatentPrior.load(folder, network.config.latent_size)
        head = CellHead.load(folder, network.config.latent_size)
        return cls(network, meta, torch.device(device), prior=prior, cell_head=head)

    @property
    def default_prior(self) -> str:
        """'aggregate' when the checkpoint has a fitted latent prior, else 'standard'."""
        return "aggregate" if self.prior is not None else "standard"

    @property
    def representation(self) -> str:
        return self.network.config.representation

    @property
    def conditional(self) -> bool:
        return self.network.config.conditional

    @property
    def latent_size(self) -> int:
        return self.network.config.latent_size

    @property
    def scale(self) -> float:
        return self.network.config.density_scale

    def background_offset_for(self, consensus: bool = True) -> float:
        """Subtracted from the background logit before the argmax (0 = plain argmax), for a consensus's
        orientations or (`consensus=False`) a single decoding; see `segmentation_for`.

        Chosen on the validation split by `python -m train.calibrate` and stored in model.json under
        "segmentation": an under-trained U-Net calls too many faint atom voxels background.
        """
        return float(self._stored_segmentation(consensus).get("background_logit_offset", 0.0))

    @property
    def background_offset(self) -> float:
        """The background offset of a reconstruction's decodings (`background_offset_for`)."""
        return self.background_offset_for(True)

    def _stored_segmentation(self, consensus: bool) -> dict:
        stored = dict(self.metadata.get("segmentation", {}))
        single = stored.pop("single_decoding", None) or {}
        return stored if consensus else {**stored, **single}

    def segmentation_for(self, consensus: bool = True) -> dict:
        """How decoded grids become atoms: `split_angstrom` (watershed split of joined atoms, None = one atom
        per component) and `species` ("vote": the paper's majority vote; "amplitude+vote": votes combined
        with least-squares Gaussian amplitudes, `crystal_explorer.density_fit`) and `species_rule` (the
        `SpeciesRule` fields of that combination; {} = the defaults) and `merged_split` (the `MergedSplit`
        fields that cut a light atom weighing like two in two; None = no cut). Single-cell models default to both
        refinements (chosen on the val split); lattice models to the paper's rule. model.json's
        "segmentation" overrides; it is chosen for what a reconstruction decodes (`consensus`), and its
        "single_decoding" entry, where present, overrides that again for a grid decoded on its own (a draw,
        an interpolation, the latent explorer, a one-orientation reconstruction: `consensus=False`), whose
        densities are blurrier than a consensus's orientations need them to be."""
        defaults = {"split_angstrom": 1.0, "species": "amplitude+vote", "species_rule": {}, "merged_split": None} if (
            self.representation == "single") else {"split_angstrom": None, "species": "vote", "species_rule": {}, "merged_split": None}
        stored = self._stored_segmentation(consensus)
        return {k: stored.get(k, v) for k, v in defaults.items()}

    def drop_merged_split(self) -> None:
        """Segment from now on without the checkpoint's merged split (to measure what it does)."""
        segmentation = dict(self.metadata.get("segmentation", {}))
        segmentation.pop("merged_split", None)
        if "single_decoding" in segmentation:
            segmentation["single_decoding"] = {k: v for k, v in segmentation["single_decoding"].items() if k != "merged_split"}
        self.metadata = {**self.metadata, "segmentation": segmentation}

    @property
    def segmentation(self) -> dict:
        """The segmentation of a reconstruction's decodings (`segmentation_for`)."""
        return self.segmentation_for(True)

    def atoms_of(self, species: np.ndarray, density: np.ndarray, consensus: bool = False) -> Atoms:
        """Atoms (Å, cube frame) of one decoded species grid (n, n, n) and its density (n, n, n) in Z units, by
        the segmentation of a single decoding or (`consensus`) of a consensus's orientation."""
        rule = self.segmentation_for(consensus)
        atoms = atoms_from_species_grid(species, self.grid, weights=density, split_angstrom=rule["split_angstrom"])
        if rule["species"] == "amplitude+vote" and len(atoms):
            amplitudes = fit_amplitudes(density, atoms.positions, self.grid)
            try:
                species_rule = SpeciesRule.from_dict(rule["species_rule"])
            except (TypeError, ValueError) as exc:
                raise CrystalExplorerError(f"the checkpoint's species rule is not readable ({exc})") from exc
            try:
                split = None if rule["merged_split"] is None else MergedSplit.from_dict(rule["merged_split"])
            except (TypeError, ValueError) as exc:
                raise CrystalExplorerError(f"the checkpoint's merged split is not readable ({exc})") from exc
            if split is not None:
                atoms, amplitudes = split_merged_atoms(density, atoms, amplitudes, self.grid, split)
            z = species_from_amplitudes(amplitudes, atoms.votes, self.network.config.max_z, species_rule)
            atoms = Atoms(atoms.positions, z, atoms.n_voxels, atoms.votes)
        elif rule["species"] not in ("vote", "amplitude+vote"):
            raise CrystalExplorerError(f"unknown species rule {rule['species']!r} in the checkpoint's segmentation")
        return atoms

    def decode_density(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Network-scaled densities (B, 1, n, n, n) of latents (B, L); `condition` (B, 1) for the conditional model."""
        return self.frozen("decoder", self.network.decoder, self.network.bottleneck(z, condition))

    def segment_scores(self, density: torch.Tensor, consensus: bool = False) -> torch.Tensor:
        """Class logits (B, C, n, n, n) of network-scaled densities (B, 1, n, n, n), the background offset of a
        single decoding or (`consensus`) of a consensus's orientation applied."""
        scores = self.frozen("unet", self.network.unet, density).float()
        offset = self.background_offset_for(consensus)
        if offset:
            scores[:, 0] -= offset
        return scores

    # --- encoding -------------------------------------------------------------------------------
    def place(self, crystal: CrystalArrays, seed: int = 0, canonical: bool = False) -> Placement:
        """Place a crystal in the cube as this model's representation, seeded; raises if it cannot fit."""
        for z in crystal.atomic_numbers:
            if not 1 <= int(z) <= self.network.config.max_z:
                raise CrystalExplorerError(f"element Z={int(z)} is beyond this model's classes (1 to {self.network.config.max_z})")
        placement = place(crystal, self.representation, np.random.default_rng(seed), self.grid, canonical=canonical)
        if placement is None:
            raise CrystalExplorerError(
                "the unit cell does not fit the 10 Å cube in any orientation tried; use the lattice model"
            )
        return placement

    @torch.no_grad()
    def encode_placements(self, placements: list[Placement]) -> list[Encoded]:
        pos, z = pad_batch(placements)
        x, species = batch_grids(pos.to(self.device), z.to(self.device), self.grid, self.scale)
        mean, log_var = self.network.encode(x)
        x, species, mean, log_var = (t.cpu().numpy() for t in (x, species, mean, log_var))
        return [Encoded(p, x[i, 0] * self.scale, species[i], mean[i], log_var[i]) for i, p in enumerate(placements)]

    def encode_means(self, placements: list[Placement], batch_size: int = 32) -> np.ndarray:
        """Posterior means (N, L) of many placements, encoded in batches with a progress bar."""
        from tqdm import tqdm

        means = []
        for start in tqdm(range(0, len(placements), batch_size), desc="encoding", unit=" batch"):
            means += [e.mean for e in self.encode_placements(placements[start : start + batch_size])]
        return np.stack(means) if means else np.zeros((0, self.latent_size), np.float32)

    def encode(self, crystal: CrystalArrays, seed: int = 0, canonical: bool = False) -> Encoded:
        """Encode one crystal (its posterior mean is `.mean`)."""
        return self.encode_placements([self.place(crystal, seed, canonical)])[0]

    # --- decoding -------------------------------------------------------------------------------
    def condition_for(self, max_z: float | None = None, density: np.ndarray | None = None) -> torch.Tensor | None:
        """The conditional model's bottleneck scale: the largest density, given as a grid or as a target max Z."""
        if not self.conditional:
            return None
        if density is not None:
            value = float(np.max(density)) / self.scale
        elif max_z is not None:
            value = float(max_z) / self.scale  # a lone atom of atomic number Z peaks at Z
        else:
            raise CrystalExplorerError("the conditional model needs a target max Z to decode")
        return torch.tensor([[max(value, 1e-3)]], device=self.device)

    @torch.no_grad()
    def decode(self, latents: np.ndarray, max_z: float | None = None, condition: torch.Tensor | None = None,
               consensus: bool = False) -> list[Decoded]:
        """Decode latents (B, L) (or (L,)) into densities, species grids and atoms, segmented as single decodings
        or (`consensus`) as the orientations of a consensus (`segmentation_for`)."""
        latents = np.atleast_2d(np.asarray(latents, np.float32))
        if latents.shape[1] != self.latent_size:
            raise CrystalExplorerError(f"latent has size {latents.shape[1]}; this model's is {self.latent_size}")
        out = []
        # on the CPU small batches are faster per latent (benchmarks/latent.py): the working set stays in cache
        step = 4 if self.device.type == "cpu" else 32
        for start in range(0, len(latents), step):
            z = torch.from_numpy(latents[start : start + step]).to(self.device)
            cond = condition if condition is not None else self.condition_for(max_z)
            if cond is not None:
                cond = cond.expand(len(z), 1)
            density = self.decode_density(z, cond)
            species = self.segment_scores(density, consensus).argmax(1).cpu().numpy()
            density = (density[:, 0] * self.scale).cpu().numpy()
            for i in range(len(z)):
                atoms = self.atoms_of(species[i], density[i], consensus)
                out.append(Decoded(latents[start + i], density[i], species[i], atoms))
        return out

    @property
    def refinement(self) -> RefineConfig:
        """How reconstructions refine the posterior mean on the input density (`crystal_explorer.refine`):
        model.json's "refinement" ({"steps": N, "lr": x}), else the default chosen on the val split."""
        try:
            return RefineConfig.from_dict(self.metadata.get("refinement"))
        except (TypeError, ValueError) as exc:
            raise CrystalExplorerError(f"the checkpoint's refinement is not readable ({exc})") from exc

    def refine(self, encoded: list[Encoded], config: RefineConfig | None = None, progress=None) -> np.ndarray:
        """Latents (B, L) of encodings refined on their own input densities (default: `refinement`); the
        posterior means themselves when it has no steps. `progress(step, steps)` follows the steps."""
        config = self.refinement if config is None else config
        means = np.stack([e.mean for e in encoded]).astype(np.float32)
        if config.steps == 0 or len(encoded) == 0:
            return means
        x = torch.from_numpy(np.stack([e.density for e in encoded]) / self.scale).float()[:, None].to(self.device)
        condition = torch.cat([self.condition_for(density=e.density) for e in encoded]) if self.conditional else None
        latents, _ = refine_latents(self.network, x, torch.from_numpy(means).to(self.device), condition, config, progress)
        return latents

    @property
    def consensus(self) -> ConsensusConfig:
        """How many orientations a reconstruction decodes and merges (`crystal_explorer.consensus`): model.json's
        "consensus", else one orientation (the plain reconstruction). Lattice models always decode one."""
        try:
            config = ConsensusConfig.from_dict(self.metadata.get("consensus"))
        except (TypeError, ValueError) as exc:
            raise CrystalExplorerError(f"the checkpoint's consensus is not readable ({exc})") from exc
        return config if self.representation == "single" else ConsensusConfig()

    def other_orientations(self, crystal: CrystalArrays, seed: int | list[int], count: int) -> list[Placement]:
        """Up to `count` further placements of a single cell, each seeded with [*seed, k] (k = 1, 2, ...); an
        orientation that does not fit the cube is left out."""
        seed = [seed] if isinstance(seed, int) else list(seed)
        if self.representation != "single":
            return []
        found = (place(crystal, "single", np.random.default_rng([*seed, k]), self.grid) for k in range(1, count + 1))
        return [p for p in found if p is not None]

    def merged_decoding(self, placements: list[Placement], decodings: list[Decoded], config: ConsensusConfig) -> Decoded:
        """The first decoding with its atoms replaced by those that `config.support` of `decodings` (the same
        single cell decoded in `placements`' orientations) agree on, in the first placement's frame."""
        first = decodings[0]
        if len(decodings) == 1:
            return first
        sets = [self.atoms_in_frame(d.atoms, d.density, p, placements[0]) for p, d in zip(placements, decodings, strict=True)]
        merged = merge(sets, min(config.support, len(decodings)), config.radius_angstrom)
        return first._replace(atoms=self.merged_atoms(merged))

    def atoms_in_frame(self, atoms: Atoms, density: np.ndarray, placement: Placement, reference: Placement) -> DecodedAtoms:
        """One orientation's decoded atoms, as a consensus merges them: positions moved from `placement`'s frame into
        `reference`'s, the votes, and Gaussian amplitudes fitted to the decoded `density` (n, n, n) in Z units."""
        return DecodedAtoms(
            to_reference_frame(atoms.positions, placement.rotation, reference.rotation, self.grid.centre_angstrom),
            atoms.votes if atoms.votes is not None else np.zeros((len(atoms), 1)),
            fit_amplitudes(density, atoms.positions, self.grid))

    def merged_atoms(self, merged: Merged, rule: SpeciesRule | None = None) -> Atoms:
        """Atoms of a consensus (`consensus.merge`): species from the pooled votes and mean amplitudes by `rule`
        (default: the checkpoint's species rule) where the segmentation weighs amplitudes, else the vote."""
        if self.segmentation["species"] == "amplitude+vote" and len(merged.positions):
            rule = rule or SpeciesRule.from_dict(self.segmentation["species_rule"])
            z = species_from_amplitudes(merged.amplitudes, merged.votes, self.network.config.max_z, rule)
        else:
            z = merged.votes.argmax(1) if len(merged.positions) else np.zeros(0, np.int64)
        n_voxels = np.rint(merged.votes.sum(1) / np.maximum(merged.support, 1)).astype(np.int64)  # per decoding
        return Atoms(merged.positions, np.asarray(z, np.int64), n_voxels, merged.votes)

    def decode_encodings(self, encoded: list[Encoded], refine: bool = True, progress=None,
                         config: RefineConfig | None = None, consensus: bool | list[bool] = False) -> list[Decoded]:
        """Decode several encodings, refined together (`config`, default `refinement`; see `decode_encoded`), each
        segmented as a single decoding or as a consensus's orientation (`consensus`, one flag or one per encoding)."""
        latents = self.refine(encoded, config, progress) if refine else np.stack([e.mean for e in encoded])
        flags = [consensus] * len(encoded) if isinstance(consensus, bool) else list(consensus)
        return [self.decode(z, condition=self.condition_for(density=e.density), consensus=c)[0]
                for z, e, c in zip(latents, encoded, flags, strict=True)]

    def decode_encoded(self, encoded: Encoded, refine: bool = True, progress=None) -> Decoded:
        """Decode an encoding: its posterior mean refined on the input density (`refinement`; `refine=False`
        decodes the posterior mean itself, the paper's reconstruction). The conditional model is conditioned
        on its input's largest density."""
        return self.decode_encodings([encoded], refine, progress)[0]

    def reconstruct(self, crystal: CrystalArrays, seed: int = 0, canonical: bool = False, refine: bool = True,
                    progress=None, orientations: int | None = None) -> Reconstruction:
        """Encode, refine (see `decode_encoded`), decode, segment and compare with the truth. A single cell is
        decoded in `orientations` orientations (default: the checkpoint's `consensus`) and the atoms most of
        them agree on are kept, in the frame of the first (`merged_decoding`); `canonical` decodes one."""
        config = self.consensus if orientations is None else self.consensus.with_orientations(orientations)
        first = self.place(crystal, seed, canonical)
        placements = [first] + ([] if canonical else self.other_orientations(crystal, seed, config.orientations - 1))
        encoded = self.encode_placements(placements)
        decodings = self.decode_encodings(encoded, refine, progress, consensus=len(placements) > 1)
        decoded = self.merged_decoding(placements, decodings, config)
        return Reconstruction(encoded[0], decoded, compare_decoding(encoded[0], decoded, self.grid))

    def predicted_cell(self, decoded: Decoded, positions: np.ndarray | None = None,
                       atomic_numbers: np.ndarray | None = None) -> np.ndarray | None:
        """Lattice rows (3, 3) in Å in the cube frame for a single-cell decoding with no known cell: the cell
        head's parameters, oriented on the decoded atoms (`crystal_explorer.cell`), or on `positions` (N, 3)
        and their `atomic_numbers` when given (evaluation orients on the true atoms); None without a head or atoms."""
        if positions is None:
            positions, atomic_numbers = decoded.atoms.positions, decoded.atoms.atomic_numbers
        if self.cell_head is None or self.representation != "single" or len(positions) == 0:
            return None
        lattice = lattice_from_parameters(self.cell_head.parameters_of(decoded.latent)[0])
        return orient_cell(positions, lattice, atomic_numbers=atomic_numbers)[0]

    def periodic_structure(self, decoded: Decoded, cell: np.ndarray | None = None, predict: bool = True):
        """The periodic crystal behind a decoding, and where its cell came from: (pymatgen Structure or None, source).

        Lattice models recover the lattice from the decoded atoms, else use `cell` (3, 3) Å rows in the
        cube frame (the input's, as placed) when given. Single-cell models use `cell` when given, else
        (with `predict`) the cell head's cell oriented on the atoms. Source is "" when no structure is made.
        """
        from crystal_explorer.lattice import recover_lattice, single_cell_structure, structure_in_cell

        atoms = decoded.atoms
        if len(atoms) == 0:
            return None, ""
        if self.representation == "lattice":
            recovered = recover_lattice(atoms.positions, atoms.atomic_numbers, grid=self.grid)
            if recovered is not None:
                return recovered.structure, "recovered from the decoded atoms"
            if cell is not None:
                return structure_in_cell(atoms.positions, atoms.atomic_numbers, cell, grid=self.grid), "the input's cell (none recovered)"
            return None, ""
        if cell is not None:
            return single_cell_structure(atoms.positions, atoms.atomic_numbers, cell), "the input's cell"
        predicted = self.predicted_cell(decoded) if predict else None
        if predicted is None:
            return None, ""
        return single_cell_structure(atoms.positions, atoms.atomic_numbers, predicted), "predicted by the cell head"

    # --- exploring --------------------------------------------------------------------------------
    def draw(self, n: int, seed: int = 0, prior: str | None = None) -> np.ndarray:
        """n latents (n, L) from ε ~ N(0, 1), reproducible for a seed.

        `prior` 'standard' returns ε itself (the VAE's prior); 'aggregate' maps it onto the training
        crystals' encodings, z = μ + L ε (`crystal_explorer.prior`); default: aggregate when fitted.
        """
        prior = prior or self.default_prior
        if prior not in PRIORS:
            raise CrystalExplorerError(f"unknown prior {prior!r}; choose from {PRIORS}")
        rng = np.random.default_rng(seed)
        if prior == "standard":
            return rng.standard_normal((n, self.latent_size)).astype(np.float32)
        if self.prior is None:
            raise CrystalExplorerError("this checkpoint has no fitted latent prior (python -m train.fit_prior)")
        return self.prior.draw(n, rng)

    def sample(self, n: int, seed: int = 0, max_z: float | None = None, prior: str | None = None) -> list[Decoded]:
        """Decode n draws (see `draw`), reproducible for a seed."""
        return self.decode(self.draw(n, seed, prior), max_z=max_z)

    def interpolate(self, a: np.ndarray, b: np.ndarray, steps: int, spherical: bool = False,
                    max_z: float | None = None) -> list[Decoded]:
        """Decode `steps` latents from a to b inclusive, linearly or along the great circle."""
        if steps < 2:
            raise CrystalExplorerError("an interpolation needs at least 2 steps")
        ts = np.linspace(0, 1, steps)
        path = np.stack([slerp(a, b, t) if spherical else (1 - t) * a + t * b for t in ts])
        return self.decode(path, max_z=max_z)

    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Centre and spread (L,) of each latent coordinate under the default prior: μ and √diag Σ of the
        fitted aggregate prior, or 0 and 1 for N(0, 1). Traversals and sliders count in these units."""
        if self.prior is None:
            return np.zeros(self.latent_size), np.ones(self.latent_size)
        return self.prior.mean.copy(), np.sqrt((self.prior.scale_tril**2).sum(1))

    def traverse(self, z: np.ndarray, dim: int, values: np.ndarray, max_z: float | None = None
                 ) -> tuple[list[Decoded], list[np.ndarray]]:
        """Set latent coordinate `dim` to centre + v · spread for each v in `values` (see `axes`; −3 to 3
        spans the prior's ±3σ, as the paper's −3 to 3 does for N(0, 1)); returns the decodings and their
        density minus the unaltered decoding's."""
        if not 0 <= dim < self.latent_size:
            raise CrystalExplorerError(f"latent dimension {dim} is outside 0..{self.latent_size - 1}")
        centre, spread = self.axes()
        base = self.decode(z, max_z=max_z)[0]
        path = np.repeat(np.asarray(z, np.float32)[None], len(values), 0)
        path[:, dim] = centre[dim] + np.asarray(values, np.float64) * spread[dim]
        frames = self.decode(path, max_z=max_z)
        return frames, [f.density - base.density for f in frames]

    def rank_dimensions(self, encodings: list[Encoded]) -> np.ndarray:
        """Latent dimensions ordered by their mean KL to the prior over the given encodings (most used first)."""
        mean = np.stack([e.mean for e in encodings])
        log_var = np.stack([e.log_var for e in encodings])
        kl = 0.5 * (mean**2 + np.exp(log_var) - 1 - log_var).mean(0)
        return np.argsort(-kl)

    @torch.no_grad()
    def round_trip_error(self, x: torch.Tensor) -> torch.Tensor:
        """‖D(E(x)) − x‖² / ‖x‖² per network-scaled density (B, 1, n, n, n); E the posterior mean."""
        mean, _ = self.network.encode(x)
        condition = self.network.max_density(x) if self.conditional else None
        again = self.decode_density(mean, condition)
        return ((again - x) ** 2).sum(dim=(1, 2, 3, 4)) / (x**2).sum(dim=(1, 2, 3, 4)).clamp_min(1e-12)

    @torch.no_grad()
    def realism(self, decoded: list[Decoded]) -> np.ndarray:
        """Round-trip score in [0, 1]: exp(−(e_density + e_atoms)), 0 for a decoding with no atoms.

        e_density is the relative round-trip error ‖D(E(x)) − x‖² / ‖x‖² of the decoded density x, and
        e_atoms the same for the density of eq. (1) drawn from the decoding's segmented atoms: the crystal
        the decoding claims. A density like the training data is nearly a fixed point of the auto-encoder,
        and so is the ideal density of its atoms when segmentation found real atoms; a draw off the data
        manifold, or a smooth blob the segmentation finds no atoms in, fails one or the other. An earlier
        latent-space version, exp(−‖E(D(z)) − z‖² / L), ranked empty decodings above ones with atoms and
        was dropped; the density term alone scored atom-less lattice blobs as real.
        """
        scores = np.zeros(len(decoded))
        keep = [i for i, d in enumerate(decoded) if len(d.atoms)]
        for start in range(0, len(keep), 32):
            chunk = [decoded[i] for i in keep[start : start + 32]]
            x = torch.from_numpy(np.stack([d.density for d in chunk]) / self.scale).float()[:, None].to(self.device)
            claimed = [Placement(d.atoms.positions, d.atoms.atomic_numbers, np.eye(3), np.zeros(3)) for d in chunk]
            pos, z = pad_batch(claimed)
            ideal, _ = batch_grids(pos.to(self.device), z.to(self.device), self.grid, self.scale)
            error = self.round_trip_error(x) + self.round_trip_error(ideal)
            scores[keep[start : start + 32]] = torch.exp(-error).cpu().numpy()
        return scores


def compare_with_truth(
    placement: Placement, atoms: Atoms, grid: GridSpec = GridSpec(),
    true_density: np.ndarray | None = None, pred_density: np.ndarray | None = None,
) -> Comparison:
    """Metrics of decoded (or segmented) atoms against the placed crystal: the atoms a perfect segmentation
    would recover (those owning a voxel of S) are the truth; every placed atom is a legitimate target for
    predictions. Densities (n, n, n) in Z units, when given, add the voxel MSE."""
    seen = visible_atoms(placement.positions, placement.atomic_numbers, grid)
    return compare(
        placement.positions[seen], placement.atomic_numbers[seen], atoms.positions, atoms.atomic_numbers,
        reference_positions=placement.positions, reference_numbers=placement.atomic_numbers,
        true_density=true_density, pred_density=pred_density,
    )


def compare_decoding(encoded: Encoded, decoded: Decoded, grid: GridSpec = GridSpec()) -> Comparison:
    """`compare_with_truth` of a decoding against the crystal it was encoded from, voxel MSE included."""
    return compare_with_truth(encoded.placement, decoded.atoms, grid, encoded.density, decoded.density)
