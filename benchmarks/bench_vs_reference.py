"""Seconds per epoch side by side with the PyTorch SASRec (pmixer/SASRec.pytorch) and SASRec+'s PyTorch code
(antklen/sasrec-bert4rec-recsys23, full CE), in one sitting.

    python benchmarks/bench_vs_reference.py --reference-dir /path/to/SASRec.pytorch/python
    python benchmarks/bench_vs_reference.py --skip-reference --experiments sasrec_ml1m_ce
    python benchmarks/bench_vs_reference.py --skip-reference --sasrec-plus-dir /path/to/sasrec-bert4rec-recsys23/src \
        --experiments sasrec_ml1m_ce,"sasrec_ml1m_ce train.bucketing=false"

Each system runs N1 and N2 epochs from a cold start (whole processes, as a user runs them); seconds per
epoch = (wall(N2) - wall(N1)) / (N2 - N1), so start-up, compilation and the final evaluation cancel.
Ours is the experiment's own command (`python -m experiments.train experiment=X train.epochs=N`), its
per-epoch validation included; the reference is its `main.py --device=cpu --maxlen=200 --dropout_rate=0.2`
(it evaluates every 20 epochs, so not here). The reference lives outside this repository (its own license):
clone it anywhere and copy ml-1m.txt into its `data/` folder. `--sasrec-plus-dir`: SASRec+'s model, data and loss
trained by `benchmarks/sasrec_plus_epochs.py` (its docstring says what is theirs), each epoch with its
validation pass, against which the full-CE experiments are compared. Appends a dated table to
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import functools
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.env_info import ROOT, environment


def wall(cmd: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return seconds


def ours(experiment: str, epochs: int) -> float:
    """`experiment`: an experiment's name, optionally followed by overrides (`sasrec_ml1m_ce train.bucketing=false`)."""
    name, *overrides = experiment.split()
    with tempfile.TemporaryDirectory() as run_dir:
        cmd = [sys.executable, "-m", "experiments.train", f"experiment={name}", *overrides, f"train.epochs={epochs}"]
        return wall([*cmd, "train.progress=false", f"hydra.run.dir={run_dir}"], ROOT)


def sasrec_plus(src: Path, epochs: int) -> float:
    script = ROOT / "benchmarks" / "sasrec_plus_epochs.py"
    return wall([sys.executable, str(script), f"--src={src}", f"--epochs={epochs}"], ROOT)


def reference(reference_dir: Path, epochs: int) -> float:
    train_dir = f"bench_{epochs}"
    cmd = [sys.executable, "main.py", "--dataset=ml-1m", f"--train_dir={train_dir}", "--device=cpu"]
    cmd += ["--maxlen=200", "--dropout_rate=0.2", f"--num_epochs={epochs}"]
    try:
        return wall(cmd, reference_dir)
    finally:
        shutil.rmtree(reference_dir / f"ml-1m_{train_dir}", ignore_errors=True)


def per_epoch(run, n1: int, n2: int) -> tuple[float, float, float]:
    short, long = run(n1), run(n2)
    return (long - short) / (n2 - n1), short, long


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-dir", type=Path, help="SASRec.pytorch's python/ folder, ml-1m.txt in data/")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--sasrec-plus-dir", type=Path, help="the src/ folder of sasrec-bert4rec-recsys23 (full CE)")
    parser.add_argument("--experiments", default="sasrec_ml1m_bce,sasrec_ml1m_ce")
    parser.add_argument("--epochs", default="1,4", help="N1,N2")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    n1, n2 = (int(x) for x in args.epochs.split(","))
    if not (ROOT.parent / "shared" / "data" / "ml-1m" / "ml-1m.txt").exists():
        print("skipped: ML-1M is read from ../shared/data/ml-1m (not redistributable) and is absent")
        return 0
    rows = []
    if not args.skip_reference:
        if args.reference_dir is None or not (args.reference_dir / "main.py").exists():
            sys.exit("--reference-dir must be SASRec.pytorch's python/ folder (or pass --skip-reference)")
        rows.append(("PyTorch SASRec (BCE, hidden 50)", *per_epoch(lambda n: reference(args.reference_dir, n), n1, n2)))
        print(rows[-1], flush=True)
    plus = None  # SASRec+'s seconds per epoch, the second ratio's base
    if args.sasrec_plus_dir is not None:  # sasrec_plus_epochs.py says so if the folder is not theirs
        run = functools.partial(sasrec_plus, args.sasrec_plus_dir)
        rows.append(("SASRec+'s PyTorch code (full CE, hidden 64)", *per_epoch(run, n1, n2)))
        plus = rows[-1][1]
        print(rows[-1], flush=True)
    for experiment in args.experiments.split(","):
        rows.append((f"experiment={experiment}", *per_epoch(lambda n, e=experiment: ours(e, n), n1, n2)))
        print(rows[-1], flush=True)
    env = environment("torch")
    base = rows[0][1] if not args.skip_reference else None
    lines = [
        f"\n## bench_vs_reference.py — {env['date']}, commit {env['commit']}\n",
        f"Machine: {env['machine']}; python {env['python']}, jax {env['jax']}, flax {env['flax']}, "
        f"torch {env['torch']}. Per epoch = (wall({n2}) - wall({n1})) / {n2 - n1}, whole processes.\n",
        f"Command: `python benchmarks/bench_vs_reference.py {shlex.join(sys.argv[1:] if argv is None else argv)}`\n",
        f"| run | s/epoch | wall {n1} epochs | wall {n2} epochs | speed vs reference | speed vs SASRec+'s code |",
        "|---|---|---|---|---|---|",
    ]
    for name, epoch, short, long in rows:
        ratio = f"{base / epoch:.2f}x" if base else "—"
        ratio_plus = f"{plus / epoch:.2f}x" if plus else "—"
        lines.append(f"| {name} | {epoch:.2f} | {short:.1f} | {long:.1f} | {ratio} | {ratio_plus} |")
    print("\n".join(lines))
    if not args.no_record:
        with (ROOT / "benchmarks" / "RESULTS.md").open("a") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
