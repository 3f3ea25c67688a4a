"""Which 2-D layout of the latent map reads better, and what each costs: PCA (the reference) against t-SNE.

    python -m benchmarks.latent_map_layouts [--checkpoint checkpoints/single_cell] [--data ../shared/data] [--n 3000]

Encodes (or reads from the app's cache, `data_cache/latent_map/`) the held-out map of `--n` crystals, lays it
out both ways and prints, per layout: trustworthiness at 10 neighbours (scikit-learn: are a point's map
neighbours its latent neighbours; 1 = all), how often a crystal's source is the majority of its 10 nearest
map neighbours' (5-fold), R² of log atom count from those neighbours (5-fold), the seconds to lay the map out,
and the seconds to draw it from the cache (load + figure). The 300-D latent itself is the ceiling.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from crystal_explorer import latent_map
from crystal_explorer.latent import CrystalModel

ROOT = Path(__file__).resolve().parents[1]


def scores(latents: np.ndarray, xy: np.ndarray, table) -> tuple[float, float, float]:
    from sklearn.manifold import trustworthiness
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    folds = KFold(5, shuffle=True, random_state=0)
    trust = trustworthiness(latents, xy, n_neighbors=10) if xy.shape[1] == 2 else 1.0
    source = cross_val_score(KNeighborsClassifier(10), xy, table["source"].to_numpy(), cv=folds).mean()
    atoms = cross_val_score(KNeighborsRegressor(10), xy, np.log(table["atom count"].to_numpy()), cv=folds, scoring="r2").mean()
    return trust, source, atoms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="checkpoints/single_cell")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--n", type=int, default=latent_map.MAP_SIZE)
    parser.add_argument("--cache", default=str(ROOT / "data_cache" / "latent_map"))
    args = parser.parse_args()
    folder = ROOT / args.checkpoint
    paths = sorted(str(p) for p in Path(args.data).iterdir() if p.name.endswith((".csv", ".csv.gz")))
    model = CrystalModel.from_checkpoint(folder, "cpu")
    base = latent_map.load_or_encode(model, folder, paths, args.cache, args.n, layout="PCA")
    latents, table = base.latents, base.table
    print(f"{len(latents)} held-out crystals of {', '.join(Path(p).name for p in paths)}; model {args.checkpoint}")
    print("layout | trustworthiness@10 | source from 10 map neighbours | R² log atom count | lay out (s) | draw from cache (s)")
    print("--- | --- | --- | --- | --- | ---")
    trust, source, atoms = scores(latents, latents, table)
    print(f"300-D latent (ceiling) | 1 | {100 * source:.1f} % | {atoms:.2f} | — | —")
    for layout in latent_map.LAYOUTS:
        start = time.perf_counter()
        xy = latent_map.Projection.fit(latents, 2).project(latents) if layout == "PCA" else latent_map.tsne_layout(latents)
        seconds = time.perf_counter() - start
        if layout != "PCA":  # the layout just computed becomes the cache when there is none (not laid out twice)
            stored = latent_map.layout_file(latent_map.cache_file(args.cache, folder, paths, args.n), layout)
            if not stored.is_file():
                np.save(stored, xy)
        start = time.perf_counter()
        lmap = latent_map.load_or_encode(model, folder, paths, args.cache, args.n, layout=layout)
        latent_map.map_figure(lmap, "source").to_json()
        draw = time.perf_counter() - start
        trust, source, atoms = scores(latents, xy, table)
        print(f"{layout} | {trust:.2f} | {100 * source:.1f} % | {atoms:.2f} | {seconds:.1f} | {draw:.2f}")


if __name__ == "__main__":
    main()
