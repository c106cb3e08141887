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

Their run to early stopping, on this machine (hours on 2 cores; resumable):

    python benchmarks/sasrec_plus_epochs.py --src DIR/src --epochs 100 --patience 10 --run-dir /some/dir

as their `run.py` trains: validation NDCG@10 after every epoch, stop after `--patience` epochs without a new best
(Lightning's EarlyStopping), at most `--epochs` (their `max_epochs` 100), then the best epoch's weights
(ModelCheckpoint on val_ndcg) rank every user's test item with the validation item as the input's last (their
`predict` on `validation_full`), seen items filtered, top 10. `--run-dir` keeps `state.pt` (weights, optimizer,
torch's random state, the best weights) after every epoch, so a stopped run continues exactly, and
`epochs.jsonl`; the last line of stdout and `result.json` give the test NDCG@10 / HR@10 of the best epoch
(`compute_val_metrics`: 1 / log2(rank + 1) and hits, which their `compute_metrics` reduces to for one test item).
"""

from __future__ import annotations

import argparse
import json
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


def evaluate(module, loader) -> dict[str, float]:
    """NDCG@10 and HR@10 of `loader`'s targets as SeqRec's validation computes them, weighted by batch size."""
    module.eval()
    sums, count = {"ndcg": 0.0, "hit_rate": 0.0}, 0
    with torch.no_grad():
        for batch in loader:
            preds, _ = module.make_prediction(batch)
            metrics = module.compute_val_metrics(batch["target"], preds)
            for key in sums:
                sums[key] += metrics[key] * len(preds)
            count += len(preds)
    return {key: value / count for key, value in sums.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, required=True, help="the src/ folder of sasrec-bert4rec-recsys23")
    parser.add_argument("--epochs", type=int, required=True, help="epochs (with --patience: at most)")
    parser.add_argument("--patience", type=int, help="early stopping on valid NDCG@10, then the test metrics")
    parser.add_argument("--run-dir", type=Path, help="with --patience: state.pt, epochs.jsonl, result.json")
    parser.add_argument("--data", type=Path, default=ML1M)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not (args.src / "models.py").exists():
        sys.exit(f"--src={args.src}: not the src/ folder of sasrec-bert4rec-recsys23 (no models.py)")
    if (args.patience is None) != (args.run_dir is None):
        sys.exit("--patience and --run-dir go together (a run to early stopping keeps its state in --run-dir)")
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

    def prediction_loader(frame, validation_mode: bool):
        dataset = CausalLMPredictionDataset(frame, max_length=200, validation_mode=validation_mode)
        return torch.utils.data.DataLoader(dataset, batch_size=256, shuffle=False, collate_fn=PaddingCollateFn())

    eval_loader = prediction_loader(validation_full, validation_mode=True)
    model = SASRec(item_num=item_count, maxlen=200, hidden_units=64, num_blocks=2, num_heads=1, dropout_rate=0.1)
    module = SeqRec(model, lr=1e-3, predict_top_k=10, filter_seen=True)
    optimizer = module.configure_optimizers()
    state = {"epoch": 0, "best": -1.0, "best_epoch": 0, "best_weights": None}
    state_path = args.run_dir / "state.pt" if args.run_dir else None
    if args.run_dir is not None:
        args.run_dir.mkdir(parents=True, exist_ok=True)
    if state_path is not None and state_path.exists():  # continue exactly where the last epoch ended
        saved = torch.load(state_path, weights_only=False)
        module.load_state_dict(saved["module"])
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng"])
        state = saved["state"]
        log_path = args.run_dir / "epochs.jsonl"
        if log_path.exists():  # a kill after an epoch's log line and before its state: that epoch runs again
            lines = log_path.read_text().splitlines(keepends=True)
            log_path.write_text("".join(line for line in lines if json.loads(line)["epoch"] <= state["epoch"]))
    ndcg, train_seconds, valid_seconds = float("nan"), 0.0, 0.0
    while state["epoch"] < args.epochs and not state.get("stopped"):
        epoch_started = time.perf_counter()
        module.train()
        for batch in train_loader:
            optimizer.zero_grad()
            module.training_step(batch, 0).backward()
            optimizer.step()
        valid_started = time.perf_counter()
        train_seconds += valid_started - epoch_started
        ndcg = evaluate(module, eval_loader)["ndcg"]
        valid_seconds += time.perf_counter() - valid_started
        state["epoch"] += 1
        if args.patience is None:
            continue
        if ndcg > state["best"]:
            weights = {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}
            state |= {"best": ndcg, "best_epoch": state["epoch"], "best_weights": weights}
        state["stopped"] = state["epoch"] - state["best_epoch"] >= args.patience
        record = {"epoch": state["epoch"], "valid_ndcg": ndcg, "seconds": time.perf_counter() - epoch_started}
        with (args.run_dir / "epochs.jsonl").open("a") as log:
            log.write(json.dumps(record) + "\n")
        saved = {"module": module.state_dict(), "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()}
        torch.save(saved | {"state": state}, args.run_dir / "state.tmp")
        (args.run_dir / "state.tmp").replace(state_path)  # a kill never leaves half a state
    seconds = time.perf_counter() - started
    print(
        f"epochs={state['epoch']} seconds={seconds:.2f} train_seconds={train_seconds:.2f} "
        f"valid_seconds={valid_seconds:.2f} valid_ndcg={ndcg:.4f}"
    )
    if args.patience is not None:
        module.load_state_dict(state["best_weights"])
        # their predict on validation_full, scored against the test items: the same as validation mode on all the
        # data (target: each user's last item; input: the 200 before it; seen: all before it)
        test = evaluate(module, prediction_loader(data, validation_mode=True))
        result = {"test": {"NDCG@10": test["ndcg"], "HR@10": test["hit_rate"]}}
        result |= {"best_epoch": state["best_epoch"], "epochs": state["epoch"], "valid_ndcg": state["best"]}
        (args.run_dir / "result.json").write_text(json.dumps(result, indent=1))
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
