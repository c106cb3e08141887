"""Train SASRec+'s own PyTorch code (github.com/antklen/sasrec-bert4rec-recsys23, Klenitskiy & Vasilev 2023) on
ML-1M for N epochs on the CPU, each epoch followed by its validation pass: the other side of
`bench_vs_reference.py --sasrec-plus-dir`. Not a training script of this project; it times theirs.

    python benchmarks/sasrec_plus_epochs.py --src /path/to/sasrec-bert4rec-recsys23/src --epochs 4

Their modules are imported from `--src` and run as their `run.py` runs them with `configs/SASRec.yaml` and
`run_final.sh`'s ML-1M line (`dataset.max_length=200`): `prepare_data`'s split, `CausalLMDataset` and
`PaddingCollateFn` (batch 128, shuffled), their `SASRec` (hidden 64, 2 blocks, 1 head, dropout 0.1, maxlen 200)
and `SeqRec`'s loss (`compute_loss`: CE over every position, padding label -100), Adam lr 1e-3; the validation
pass is `CausalLMPredictionDataset(validation_mode=True)` over every user (their `validation_size` 10,000 >
6,040) through `SeqRec.make_prediction` (top 10 after filtering seen items) and `compute_val_metrics`, batch 256.
What is not theirs: PyTorch Lightning's loop is replaced by the same per-batch step (zero_grad, backward,
Adam step; the module's `training_step` is what Lightning calls); `pytorch_lightning` and `transformers`, which
SASRec's training never calls, are stubbed when absent (`run.py` and `metrics.py`, which import `clearml` and
`recommenders`, are not imported); DataLoader workers 0 (their config asks for 8, on a 2-core machine).
Prints one line: `epochs=N seconds=S train_seconds=T valid_seconds=V valid_ndcg=...` (S: the whole run, data
preparation included; T and V: the epochs' training steps and validation passes).
"""

from __future__ import annotations

import argparse
import sys
import time
import types
from pathlib import Path

import pandas as pd
import torch

ML1M = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-1m" / "ml-1m.txt"


def stub_unused_imports() -> None:
    """Their modules import packages that SASRec's training never calls: stand-ins where they are absent."""
    import importlib.util

    def missing(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is None
        except ValueError:
            return True

    if missing("pytorch_lightning"):
        pl = types.ModuleType("pytorch_lightning")
        pl.LightningModule = torch.nn.Module  # SeqRec's step, prediction and metrics are plain torch
        sys.modules["pytorch_lightning"] = pl
    if missing("transformers"):
        transformers = types.ModuleType("transformers")
        for name in ("BertConfig", "BertModel", "GPT2Config", "GPT2Model"):  # BERT4Rec / GPT4Rec only
            setattr(transformers, name, None)
        sys.modules["transformers"] = transformers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, required=True, help="the src/ folder of sasrec-bert4rec-recsys23")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--data", type=Path, default=ML1M)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not (args.src / "models.py").exists():
        sys.exit(f"--src={args.src}: not the src/ folder of sasrec-bert4rec-recsys23 (no models.py)")
    stub_unused_imports()
    sys.path.insert(0, str(args.src))
    from datasets import CausalLMDataset, CausalLMPredictionDataset, PaddingCollateFn
    from models import SASRec
    from modules import SeqRec
    from preprocess import add_time_idx

    torch.manual_seed(args.seed)
    started = time.perf_counter()
    data = pd.read_csv(args.data, sep=" ", header=None, names=["user_id", "item_id"])
    data = add_time_idx(data, sort=False)  # run.py's prepare_data
    train = data[data.time_idx_reversed >= 2]
    validation_full = data[data.time_idx_reversed >= 1]
    item_count = int(data.item_id.max())
    train_loader = torch.utils.data.DataLoader(
        CausalLMDataset(train, max_length=200), batch_size=128, shuffle=True, collate_fn=PaddingCollateFn()
    )
    eval_loader = torch.utils.data.DataLoader(
        CausalLMPredictionDataset(validation_full, max_length=200, validation_mode=True),
        batch_size=256,
        shuffle=False,
        collate_fn=PaddingCollateFn(),
    )
    model = SASRec(item_num=item_count, maxlen=200, hidden_units=64, num_blocks=2, num_heads=1, dropout_rate=0.1)
    module = SeqRec(model, lr=1e-3, predict_top_k=10, filter_seen=True)
    optimizer = module.configure_optimizers()
    ndcg, train_seconds, valid_seconds = float("nan"), 0.0, 0.0
    for _ in range(args.epochs):
        epoch_started = time.perf_counter()
        module.train()
        for batch in train_loader:
            optimizer.zero_grad()
            module.training_step(batch, 0).backward()
            optimizer.step()
        valid_started = time.perf_counter()
        train_seconds += valid_started - epoch_started
        module.eval()
        hits = []
        with torch.no_grad():
            for batch in eval_loader:
                preds, _ = module.make_prediction(batch)
                hits.append((module.compute_val_metrics(batch["target"], preds)["ndcg"], len(preds)))
        ndcg = sum(v * n for v, n in hits) / sum(n for _, n in hits)
        valid_seconds += time.perf_counter() - valid_started
    seconds = time.perf_counter() - started
    print(
        f"epochs={args.epochs} seconds={seconds:.2f} train_seconds={train_seconds:.2f} "
        f"valid_seconds={valid_seconds:.2f} valid_ndcg={ndcg:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
