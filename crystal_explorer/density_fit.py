"""Species from physics: a density fitted as a sum of eq. (1)'s Gaussians, whose amplitudes are atomic numbers.

In Z units (a lone atom peaks at its Z) the density of eq. (1) is Σ_m Z_m exp(−|r − r_m|² / 2σ²), so a
fitted amplitude *is* an atomic number, with the overlapping tails of neighbours accounted for. The
U-Net's votes and the amplitude are combined (`species_from_amplitudes`): the votes say which elements the
network believes in, the amplitude how heavy the atom is.

Measured on the validation split (60 crystals per source, stage-1 single-cell model, atoms from the
watershed segmentation), species exact / within ±2: the vote 45.9 / 80.7 % (Perov-5), 26.8 / 49.5 %
(Materials Project ground states), 9.0 / 48.1 % (mp_bulk), 100 / 100 % (Carbon-24); the combination with
σ_Z = 2 and a floor of 10⁻⁴: 47.6 / 86.1, 26.8 / 55.7, 11.0 / 58.3, 98.7 / 98.7 % (floor 10⁻²: Carbon-24
96 %, a merged pair of carbons weighs like Mg; σ_Z = 1.5 or 3 did no better). On 40 crystals per source
the rounded amplitude alone was worse than the vote for exact species (42 v 47 %, 19 v 26 %, 8 v 100 %):
the decoder's peak heights are right to about ±2, not to the 1/Z that exact species need. A full fit that
also moves the atoms (`fit_atoms`) found the same species and moved them slightly away from the truth, so
decodings use the amplitudes at the segmented positions.

Re-measured on the stage-3 single-cell model (2026-11-26; decoded atoms within 0.5 Å of a true one, species
exact / within ±2): the earlier rule (σ_Z = 2, floor 10⁻⁴ for every atom) trusted the votes too much for
heavy atoms, where the rounded amplitude alone was better (mp_bulk 37.7 v 20.7 % exact), and too little for
carbon (9.8 v 98.9 %). `SpeciesRule` now splits by the vote majority: Z ≤ 8 keeps the earlier weights,
heavier atoms use σ_Z = 0.7 and floor 1 (the votes break near-ties in the amplitude). Chosen by a grid on
val crystals (546: 150 per source, MP ground states / Perov-5 / Carbon-24 / mp_bulk): 30.2 / 43.0 / 98.9 /
20.7 → 32.6 / 54.7 / 98.9 / 38.7 % exact; within ±2 64.4 / 89.6 / 99.4 / 70.4 → 74.0 / 98.4 / 99.4 / 85.5 %.
Checked on 1,489 train-split crystals the grid never saw: 27.3 / 40.3 / 98.9 / 21.2 → 29.5 / 50.9 / 98.9 /
34.7 %. A prior on element frequency in the training crystals added under one point and was left out;
averaging amplitudes over atoms of one crystal with similar amplitudes, about one point.

Re-checked on refined decodings (2026-11-26, 546 val crystals, 20 refinement steps): the best of 162 grid
points beat this rule by 0.5 point of mean per-source exact species (66.5 → 67.0 %, noise), so it stays.
A charge-balance prior (among each predicted element's top-3 candidates, prefer a composition balanced by
pymatgen's common oxidation states within a log-probability margin) made species worse at every margin
(all 68.8 → 67.5 → 65.7 % for margins 2 → 40; Perov-5 64.7 → 58.5 %): many Perov-5 compositions are not
balanced by common states, and the wrong candidates often are.

The rule follows the U-Net whose votes it weighs, so each checkpoint stores its own in model.json
("segmentation": "species_rule"), chosen on val by `python -m train.calibrate --species-rules`; the defaults
below are stage 3's. For stage 8 of single_cell (2026-11-27) the calibration chose σ_Z = 3 and a heavy floor of 10
(checkpoints/README.md).

Chosen again for the consensus of 7 orientations (2026-11-28, stage 15, 371 val crystals, `train.calibrate
--orientations 7`), with `light_max_z` 6 and 7 added to the grid: the U-Net votes O for every N and F anion (0 of
146 N and 0 of 29 F exact on test), and a consensus's mean amplitude is precise enough to tell them apart. With
`light_max_z` = 6 only atoms voted carbon or lighter follow the votes; species exact 74.8 → 78.3 %, formula exact
56.3 → 70.1 % (heavy σ_Z = 1, heavy floor 10).

A cap on the elements of one decoding (`SpeciesRule.max_elements`, 2026-11-28) came from the draws: with the amplitude
deciding, nearly every atom of a draw took its own element (10 elements in 12 atoms). It is set from the training
data (99.5 % of crystals hold at most 5 elements), not swept; on val (stage 16) species exact went 69.5 → 70.1 % in
one orientation and 78.6 → 79.2 % for the consensus of 7, formula exact unchanged.

Under the cap, the number of elements is chosen per decoding by a penalised likelihood (`element_penalty`,
nats per distinct element, 2026-11-28): a decoding's stray atom whose amplitude sits between two elements no
longer brings in an element of its own. On val in one orientation (stage 17, 371 crystals, `train.calibrate
--orientations 1 --element-penalties ...`) a penalty of 4 took species exact 69.8 → 74.7 % and formula exact
44.2 → 55.5 % (8 and 16 fall back: 72.9 / 53.6 and 71.6 / 50.9 %).

Carbons 1.4–1.5 Å apart often come out of the U-Net as one blob the watershed cannot cut; its amplitude still counts
both atoms (median 8.7 for blobs owning two true carbons, 6.4 for single ones; Carbon-24 val, stage 17).
`split_merged_atoms` cuts such a light atom in two (`MergedSplit`: amplitude > 1.3 × voted Z, ≥ 25 voxels, chosen
by a one-orientation sweep of 1.3/25, 1.4/25, 1.5/20). Consensus of 7 on 371 val crystals (2026-11-29, stage 17,
`train.evaluate --split val --limit 100`, with and without `--no-merged-split`): atoms within 0.5 Å 88.5 → 90.8 %,
count exact 77.6 → 81.7 % (Carbon-24 47 → 62 %), species 79.0 → 79.2 %, formula 69.3 → 68.7 %.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from crystal_explorer.grid import GridSpec
from crystal_explorer.segment import Atoms
from crystal_explorer.settings import settings_from_dict
from crystal_explorer.voxel import density_grid, voxel_centres


@dataclass(frozen=True)
class SpeciesRule:
    """How votes and amplitudes are weighed (`species_from_amplitudes`), per atom.

    An atom whose vote majority is at most `light_max_z` takes P(Z) ∝ (vote share + `floor`) ·
    exp(−(A − Z)² / 2σ_Z²) with (`sigma_z`, `floor`); a heavier one the same with (`heavy_sigma_z`,
    `heavy_floor`). The U-Net's votes are reliable for light atoms (C, O: a carbon's amplitude is pushed up
    by overlapping neighbours) and the amplitude for heavy ones. `SpeciesRule.votes_first()` weighs every
    atom alike (the rule shipped before 2026-11-26). Chosen on the val split, see the module docstring.

    `max_elements` (None = no limit) caps the distinct elements of one decoding: each atom then takes the
    most probable Z among at most that many, the set (of elements some atom prefers) chosen to keep the
    atoms' summed log-probability highest (`fewest_elements`). Single decodings of draws otherwise give
    nearly every atom its own element (10 distinct elements in a draw of 12 atoms; training crystals hold 3
    on average, at most 5 for 99.5 %). `element_penalty` (nats, 0 = none) charges each distinct element of
    a decoding, so that a set of fewer elements wins when it costs the atoms less log-probability than that:
    a penalised likelihood that chooses the number of elements per decoding, under the cap.
    """

    sigma_z: float = 2.0
    floor: float = 1e-4
    light_max_z: int = 8
    heavy_sigma_z: float = 0.7
    heavy_floor: float = 1.0
    max_elements: int | None = None
    element_penalty: float = 0.0

    def __post_init__(self) -> None:
        if self.max_elements is not None and self.max_elements < 1:
            raise ValueError(f"max_elements must be at least 1, got {self.max_elements}")
        if not self.element_penalty >= 0:
            raise ValueError(f"element_penalty must be a non-negative number of nats, got {self.element_penalty}")

    @classmethod
    def votes_first(cls) -> SpeciesRule:
        return cls(light_max_z=10**6)

    @classmethod
    def from_dict(cls, data: dict | None) -> SpeciesRule:
        return settings_from_dict(cls, data, "species rule")


@dataclass(frozen=True)
class FitConfig:
    """How to fit.

    Attributes:
        iterations: L-BFGS iterations per fit.
        max_added: atoms that may be added at residual peaks (0 keeps the segmentation's count).
        add_threshold: a residual peak this high (Z units) gets a new atom.
        min_amplitude: atoms whose amplitude falls below this (Z units) are removed.
        species_rule: how votes and amplitudes are weighed, see `SpeciesRule`.
        max_shift_angstrom: a fitted atom that moved further than this from its start keeps its start.
    """

    iterations: int = 60
    max_added: int = 0
    add_threshold: float = 2.0
    min_amplitude: float = 0.5
    species_rule: SpeciesRule = SpeciesRule()
    max_shift_angstrom: float = 1.0


class FitResult(NamedTuple):
    """The fitted atoms, their amplitudes (K,) in Z units, and the relative residual ‖ρ − fit‖ / ‖ρ‖."""

    atoms: Atoms
    amplitudes: np.ndarray
    residual: float


def _axis_gaussians(positions: np.ndarray, grid: GridSpec) -> np.ndarray:
    """exp(−(x − p)² / 2σ²) per atom, axis and voxel centre: (K, 3, n)."""
    centres = voxel_centres(grid, dtype=torch.float64).numpy()
    return np.exp(-((centres - positions[..., None]) ** 2) / (2 * grid.sigma_angstrom**2))


def gaussian_density(positions: np.ndarray | torch.Tensor, amplitudes: np.ndarray | torch.Tensor, grid: GridSpec = GridSpec()):
    """Σ_m A_m exp(−|r − r_m|² / 2σ²) at the voxel centres: (n, n, n), Z units when A = Z. Positions (K, 3) Å.

    Eq. (1) itself (`voxel.density_grid`) with real amplitudes in place of Z, in float64; differentiable in both."""
    is_numpy = isinstance(positions, np.ndarray)
    pos = torch.as_tensor(positions, dtype=torch.float64)
    amp = torch.as_tensor(amplitudes, dtype=torch.float64)
    rho = density_grid(pos, amp, grid)
    return rho.detach().numpy() if is_numpy else rho


def _fit(rho: torch.Tensor, positions: np.ndarray, amplitudes: np.ndarray, grid: GridSpec, iterations: int):
    pos = torch.tensor(positions, dtype=torch.float64, requires_grad=True)
    amp = torch.tensor(amplitudes, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([pos, amp], lr=1, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = ((gaussian_density(pos, amp, grid) - rho) ** 2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    return pos.detach().numpy(), amp.detach().numpy()


def _initial_amplitudes(rho: np.ndarray, positions: np.ndarray, grid: GridSpec) -> np.ndarray:
    """Linear least squares for the amplitudes at fixed positions (the Gram matrix is separable per axis)."""
    g = _axis_gaussians(positions, grid)  # (K, 3, n)
    gram = np.prod(np.einsum("kan,jan->akj", g, g), axis=0)  # (K, K)
    rhs = np.einsum("kx,ky,kz,xyz->k", g[:, 0], g[:, 1], g[:, 2], rho)
    amp, *_ = np.linalg.lstsq(gram + 1e-6 * np.eye(len(gram)), rhs, rcond=None)
    return np.clip(amp, 0.0, None)


def fit_amplitudes(density: np.ndarray, positions: np.ndarray, grid: GridSpec = GridSpec()) -> np.ndarray:
    """Least-squares amplitudes (K,) in Z units of Gaussians at fixed positions (K, 3) Å that best explain
    a density (n, n, n) in Z units; clipped at 0."""
    positions = np.asarray(positions, np.float64).reshape(-1, 3)
    if len(positions) == 0:
        return np.zeros(0)
    return _initial_amplitudes(np.asarray(density, np.float64), positions, grid)


def _log_posterior(amplitudes: np.ndarray, prior: np.ndarray, floor: float, sigma_z: float) -> np.ndarray:
    z = np.arange(prior.shape[1])
    log_p = np.log(prior + floor) - (amplitudes[:, None] - z) ** 2 / (2 * sigma_z**2)
    log_p[:, 0] = -np.inf
    return log_p


def vote_majority(votes: np.ndarray) -> np.ndarray:
    """(K, C) voxel votes per atom and Z → (K,) the Z with most votes, class 0 (background) ignored; 0 without votes."""
    votes = np.asarray(votes)
    return np.where(votes[:, 1:].sum(1) > 0, votes[:, 1:].argmax(1) + 1, 0)


def species_from_amplitudes(
    amplitudes: np.ndarray, votes: np.ndarray | None = None, max_z: int = 94, rule: SpeciesRule = SpeciesRule()
) -> np.ndarray:
    """Each atom's Z: the most probable under P(Z) ∝ (vote share of Z + floor) · exp(−(A − Z)² / 2σ_Z²),
    with (σ_Z, floor) chosen per atom by `rule` (light atoms trust the votes, heavy ones the amplitude).

    Args:
        amplitudes: (K,) fitted amplitudes in Z units.
        votes: (K, C) voxel votes per atom and Z (class 0 ignored); None gives the rounded amplitude.
        rule: the weights, see `SpeciesRule`.

    Returns:
        (K,) int64 atomic numbers in 1..max_z.
    """
    amplitudes = np.asarray(amplitudes, float)
    share = np.zeros((len(amplitudes), max_z + 1))
    majority = np.zeros(len(amplitudes), np.int64)
    if votes is not None and len(amplitudes):
        v = np.asarray(votes, float)[:, : max_z + 1]
        share[:, : v.shape[1]] = v / np.maximum(v[:, 1:].sum(1, keepdims=True), 1)
        majority = vote_majority(v)
    light = _log_posterior(amplitudes, share, rule.floor, rule.sigma_z)
    heavy = _log_posterior(amplitudes, share, rule.heavy_floor, rule.heavy_sigma_z)
    # no votes at all: the amplitude alone decides (the floors only shift every Z alike)
    use_light = (majority > 0) & (majority <= rule.light_max_z)
    log_p = np.where(use_light[:, None], light, heavy)
    if rule.max_elements is not None or rule.element_penalty > 0:
        return fewest_elements(log_p, rule.max_elements, rule.element_penalty)
    return log_p.argmax(1).astype(np.int64)


def fewest_elements(log_p: np.ndarray, max_elements: int | None, penalty: float = 0.0, max_candidates: int = 16
                    ) -> np.ndarray:
    """Each atom's Z (column of `log_p`, (K, Z_max + 1) log-probabilities, column 0 = no atom and never chosen)
    among a set of at most `max_elements` distinct ones (None: no cap), the set chosen to maximise the atoms'
    summed best log-probability minus `penalty` (nats) per element, searched exhaustively among the elements
    some atom prefers (the `max_candidates` most preferred; 12 without a cap). Without a penalty this is the
    plain argmax when it holds no more elements than the cap."""
    log_p = log_p[:, 1:]
    if not len(log_p):
        return np.zeros(0, np.int64)
    best = log_p.argmax(1)
    elements, counts = np.unique(best, return_counts=True)
    cap = len(elements) if max_elements is None else min(max_elements, len(elements))
    if penalty <= 0 and len(elements) <= cap:
        return (best + 1).astype(np.int64)
    elements = elements[np.argsort(-counts, kind="stable")[: max_candidates if max_elements is not None else 12]]
    chosen, top = elements[:1], -np.inf
    for k in range(1, min(cap, len(elements)) + 1):
        subsets = np.array(list(itertools.combinations(elements, k)))  # (S, k)
        totals = log_p[:, subsets].max(2).sum(0) - penalty * k  # (S,)
        if totals.max() > top:
            top, chosen = float(totals.max()), subsets[int(totals.argmax())]
    return (chosen[log_p[:, chosen].argmax(1)] + 1).astype(np.int64)


@dataclass(frozen=True)
class MergedSplit:
    """Which atoms `split_merged_atoms` cuts in two: voted Z ≤ `light_max_z`, fitted amplitude above `ratio` ·
    the voted Z, at least `min_voxels` voxels. Chosen on val (see the module docstring)."""

    ratio: float = 1.3
    min_voxels: int = 25
    light_max_z: int = 8

    def __post_init__(self) -> None:
        if not self.ratio > 1 or self.min_voxels < 1:
            raise ValueError(f"a merged split needs ratio > 1 and min_voxels >= 1, got {self.ratio}, {self.min_voxels}")

    @classmethod
    def from_dict(cls, data: dict | None) -> MergedSplit:
        return settings_from_dict(cls, data, "merged split")


def split_merged_atoms(
    density: np.ndarray, atoms: Atoms, amplitudes: np.ndarray, grid: GridSpec = GridSpec(),
    split: MergedSplit = MergedSplit(), iterations: int = 30,
) -> tuple[Atoms, np.ndarray]:
    """Cut in two each light atom that weighs like two (`MergedSplit`). Carbons 1.4–1.5 Å apart come out of the
    U-Net as one blob the watershed cannot cut; its least-squares amplitude (Z units) still counts both atoms'
    electrons.

    The two atoms start 0.7 Å either side of the atom along the principal axis of the density the other atoms
    leave (within 1.5 Å), and their positions and amplitudes are fitted to that density; a pair the fit
    carries more than 1.5 Å away keeps the original atom. Density (n, n, n) and amplitudes (K,) in Z units,
    positions in Å. Returns the atoms (both halves take the original's Z and votes) and their amplitudes."""
    amplitudes = np.asarray(amplitudes, np.float64)
    if not len(atoms) or atoms.votes is None:
        return atoms, amplitudes
    votes = np.asarray(atoms.votes)
    majority = vote_majority(votes)
    heavy_for_vote = (majority > 0) & (majority <= split.light_max_z) & (amplitudes > split.ratio * majority)
    candidates = set(np.flatnonzero(heavy_for_vote & (np.asarray(atoms.n_voxels) >= split.min_voxels)).tolist())
    if not len(candidates):
        return atoms, amplitudes
    rho = np.asarray(density, np.float64)
    centres = (np.indices(rho.shape).reshape(3, -1).T + 0.5) * grid.voxel_size_angstrom
    positions, amps, keep_from = [], [], []
    for k in range(len(atoms)):
        pos, amp = atoms.positions[k][None], amplitudes[k : k + 1]
        if k in candidates:
            others = np.arange(len(atoms)) != k
            rest = rho - gaussian_density(atoms.positions[others], amplitudes[others], grid)
            near = np.linalg.norm(centres - atoms.positions[k], axis=1) <= 1.5
            weights = np.clip(rest.ravel()[near], 0, None)
            offsets = centres[near] - atoms.positions[k]
            axis = np.linalg.eigh((offsets * weights[:, None]).T @ offsets)[1][:, -1]  # the blob's long axis
            start = atoms.positions[k] + np.array([[-0.7], [0.7]]) * axis
            pair, pair_amp = _fit(torch.from_numpy(rest), start, np.full(2, amplitudes[k] / 2), grid, iterations)
            if np.linalg.norm(pair - atoms.positions[k], axis=1).max() <= 1.5 and (pair_amp > 0).all():
                pos, amp = pair, pair_amp
        positions.append(pos)
        amps.append(amp)
        keep_from.append([k] * len(pos))
    rows = np.concatenate(keep_from)
    cut = Atoms(np.concatenate(positions), np.asarray(atoms.atomic_numbers)[rows], np.asarray(atoms.n_voxels)[rows], votes[rows])
    return cut, np.concatenate(amps)


def fit_atoms(
    density: np.ndarray,
    atoms: Atoms,
    grid: GridSpec = GridSpec(),
    config: FitConfig = FitConfig(),
    species_grid: np.ndarray | None = None,
    max_z: int = 94,
) -> FitResult:
    """Refine segmented atoms on their density (n, n, n) in Z units by a least-squares Gaussian fit.

    Args:
        density: the (decoded) density in Z units, cube frame.
        atoms: the starting atoms (e.g. `atoms_from_species_grid`), positions in Å.
        species_grid: the segmentation's Z per voxel; when given, the votes of the voxels within the
            species radius of each fitted position enter `species_from_amplitudes`.
        max_z: species are clipped to 1..max_z.

    Returns:
        `FitResult` with atoms in the same frame; `n_voxels` counts the species-radius voxels of each atom.
    """
    rho_np = np.asarray(density, np.float64)
    if len(atoms) == 0 or not np.isfinite(rho_np).all():
        return FitResult(atoms, np.zeros(len(atoms)), 1.0)
    rho = torch.from_numpy(rho_np)
    positions = np.asarray(atoms.positions, np.float64).copy()
    start = positions.copy()
    amplitudes = _initial_amplitudes(rho_np, positions, grid)
    positions, amplitudes = _fit(rho, positions, amplitudes, grid, config.iterations)
    for _ in range(config.max_added):
        residual = rho_np - gaussian_density(positions, amplitudes, grid)
        peak = np.unravel_index(np.argmax(residual), residual.shape)
        if residual[peak] < config.add_threshold:
            break
        new = (np.array(peak) + 0.5) * grid.voxel_size_angstrom
        positions, start = np.vstack([positions, new]), np.vstack([start, new])
        amplitudes = np.append(amplitudes, residual[peak])
        positions, amplitudes = _fit(rho, positions, amplitudes, grid, config.iterations)
    # an atom the fit carried far away (or out of the cube) keeps its start: the fit had no hold on it
    moved = np.linalg.norm(positions - start, axis=1) > config.max_shift_angstrom
    inside = ((positions >= 0) & (positions <= grid.box_size_angstrom)).all(1)
    positions = np.where((moved | ~inside)[:, None], start, positions)
    keep = amplitudes >= config.min_amplitude
    positions, amplitudes = positions[keep], amplitudes[keep]
    fitted = gaussian_density(positions, amplitudes, grid)
    residual = float(np.linalg.norm(rho_np - fitted) / max(np.linalg.norm(rho_np), 1e-12))

    h, r, n = grid.voxel_size_angstrom, grid.species_radius_angstrom, grid.n_voxels
    centres = (np.indices((n,) * 3).reshape(3, -1).T + 0.5) * h
    near = np.linalg.norm(centres[None] - positions[:, None], axis=-1) <= r  # (K, n³)
    votes = None
    if species_grid is not None:
        labels = np.asarray(species_grid).ravel().astype(np.int64)
        votes = np.stack([np.bincount(labels[row], minlength=max_z + 1)[: max_z + 1] for row in near]).reshape(-1, max_z + 1)
    species = species_from_amplitudes(amplitudes, votes, max_z, config.species_rule)
    fitted_atoms = Atoms(positions, species, near.sum(1).astype(np.int64), votes)
    return FitResult(fitted_atoms, amplitudes, residual)
