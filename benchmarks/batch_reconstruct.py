"""Throughput of `python -m crystal_explorer reconstruct` on many crystals: one batch against one process per file.

Writes `--n` held-out crystals (Perov-5 validation rows from ../shared/data, else pymatgen's built-in
examples, repeated) as CIF files, then times in the same run: the simple reference, one CLI process per
file (model loaded each time, for the first `--reference` files); the batch, one process over the folder,
with and without the PNG preview, and a batch of one crystal to take its start-up (Python, torch, the model,
tracing its networks) out. Prints a table of crystals per wall second and per CPU second.

    taskset -c 0 python benchmarks/batch_reconstruct.py --n 60 --reference 3
"""

from __future__ import annotations

import argparse
import csv
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from crystal_explorer.structures import example_structures, load_dataset  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "perov_5_val.csv.gz"


def write_inputs(folder: Path, n: int) -> str:
    """`n` CIF files in `folder`; returns where they came from."""
    if DATA.is_file():
        data = load_dataset(DATA, split="val", limit=n, progress=False)
        structures, source = list(zip(data.ids, data.structures, strict=True)), "Perov-5 validation rows"
    else:
        examples = [(name, s.copy().remove_oxidation_states()) for name, s in example_structures().items()]
        structures, source = [(f"{name}_{i}", s) for i in range(n) for name, s in examples][:n], "pymatgen examples"
    for name, structure in structures:
        structure.to(filename=str(folder / f"{name}.cif"))
    return f"{len(structures)} {source}"


def cli(*args: str) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one `python -m crystal_explorer` process, which must succeed."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run([sys.executable, "-m", "crystal_explorer", *args, "--device", "cpu"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - start, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="crystals in the batch")
    parser.add_argument("--reference", type=int, default=3, help="files run as one process each (5-9 s apiece)")
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "single_cell"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs, first = tmp / "inputs", tmp / "first"
        inputs.mkdir()
        first.mkdir()
        print(f"inputs: {write_inputs(inputs, args.n)}, checkpoint {Path(args.checkpoint).name}")
        files = sorted(inputs.glob("*.cif"))
        shutil.copy(files[0], first / files[0].name)
        k = min(args.reference, len(files))
        times = [cli("reconstruct", str(f), "--out", str(tmp / "one" / f.stem), "--checkpoint", args.checkpoint)
                 for f in files[:k]]
        rows.append(("one process per file (reference)", k, *np.sum(times, axis=0)))
        for label, extra in (("batch, PNG per crystal", ()), ("batch, --no-png", ("--no-png",))):
            name = label.replace(" ", "_").replace(",", "")
            one = cli("reconstruct", str(first), "--out", str(tmp / f"{name}_1"), "--checkpoint", args.checkpoint, *extra)
            many = cli("reconstruct", str(inputs), "--out", str(tmp / name), "--checkpoint", args.checkpoint, *extra)
            with open(tmp / name / "summary.csv", newline="") as handle:
                done = sum(not r["refusal"] for r in csv.DictReader(handle))
            rows.append((label, done, *many))
            # a batch of one gives the start-up (Python, torch, the model, tracing its networks): the rest is per crystal
            rows.append(("  each further crystal", done - 1, many[0] - one[0], many[1] - one[1]))
    print(f"{'method':<36} {'crystals':>8} {'wall s':>8} {'CPU s':>8} {'crystals/s':>11} {'per CPU s':>10}")
    for label, n, wall, cpu in rows:
        print(f"{label:<36} {n:>8} {wall:>8.1f} {cpu:>8.1f} {n / wall:>11.2f} {n / cpu:>10.2f}")
    print("crystals/s is per wall second; 'per CPU s' is what an otherwise idle core would give (this machine is shared)")


if __name__ == "__main__":
    main()
