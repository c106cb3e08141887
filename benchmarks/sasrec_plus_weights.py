"""Evaluate the weights SASRec+'s own code trained (`sasrec_plus_epochs.py --run-dir DIR`: DIR/state.pt) with this
project's model and evaluator: does our evaluation give their numbers for their model?

    python benchmarks/sasrec_plus_weights.py --src DIR/src --run-dir RUN_DIR

The best epoch's weights are copied into our SASRec with SASRec+'s settings (`experiment=sasrec_ml1m_ce
model.init=sasrec_plus model.positions=from_oldest model.attn_dropout=weights train.bucketing=false`; the init
is overwritten), item rows matched through the loader's id map (ours are 1..I in sorted order of the file's
ids). Before any metric, the copy is checked: their `SASRec` (imported from `--src`, eval mode) and ours encode
the first 64 validation users' histories to the same user representations (to 1e-4; any mismatch stops it).
The training rows are compared too: their `CausalLMDataset` over `prepare_data`'s training frame (max_length 200)
against the rows our run trains on (`next_item_arrays`), user by user, inputs and targets in original ids (one
JSON line: rows compared, rows that differ). Then our evaluator runs the valid and test sets (full ranking,
seen items filtered) and prints one JSON line per set next to the harness's `result.json`.

Known difference, by design: their softmax and ranking have a class for the padding row 0, which training
moves (it is never a target, so its logit is pushed down); ours ranks items 1..I only.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, not installed
from benchmarks.sasrec_plus_epochs import ML1M, stub_unused_imports

SASREC_PLUS = [
    "experiment=sasrec_ml1m_ce",
    "model.init=sasrec_plus",
    "model.positions=from_oldest",
    "model.attn_dropout=weights",
    "train.bucketing=false",
    "train.progress=false",
    "train.tensorboard=false",
]


def load_torch_weights(model, weights: dict[str, np.ndarray], item_ids: np.ndarray) -> None:
    """Copy SASRec+'s `SASRec` state dict (names without the Lightning module's `model.` prefix) into our
    SASRec `model`; `item_ids` [I + 1]: the original id of each of our item rows (entry 0: padding)."""
    dim = model.embedding.items.embedding[...].shape[1]

    def put(param, value: np.ndarray) -> None:
        if param[...].shape != value.shape:
            raise ValueError(f"shape {value.shape} from their weights, ours {param[...].shape}")
        param[...] = jnp.asarray(value, jnp.float32)

    items = weights["item_emb.weight"]
    put(model.embedding.items.embedding, np.concatenate([np.zeros_like(items[:1]), items[item_ids[1:]]]))
    put(model.embedding.positions.embedding, weights["pos_emb.weight"])
    for i, block in enumerate(model.encoder.blocks):
        packed, packed_bias = (
            weights[f"attention_layers.{i}.in_proj_weight"],
            weights[f"attention_layers.{i}.in_proj_bias"],
        )
        for j, layer in enumerate((block.attention.query, block.attention.key, block.attention.value)):
            put(layer.kernel, packed[j * dim : (j + 1) * dim].T)  # torch [out, in], flax [in, out]
            put(layer.bias, packed_bias[j * dim : (j + 1) * dim])
        put(block.attention.out.kernel, weights[f"attention_layers.{i}.out_proj.weight"].T)
        put(block.attention.out.bias, weights[f"attention_layers.{i}.out_proj.bias"])
        for norm, theirs in ((block.attn_norm, "attention_layernorms"), (block.ffn_norm, "forward_layernorms")):
            put(norm.scale, weights[f"{theirs}.{i}.weight"])
            put(norm.bias, weights[f"{theirs}.{i}.bias"])
        for linear, conv in ((block.ffn.inner, "conv1"), (block.ffn.outer, "conv2")):
            put(linear.kernel, weights[f"forward_layers.{i}.{conv}.weight"][:, :, 0].T)  # 1x1 conv [out, in, 1]
            put(linear.bias, weights[f"forward_layers.{i}.{conv}.bias"])
    put(model.encoder.final_norm.scale, weights["last_layernorm.weight"])
    put(model.encoder.final_norm.bias, weights["last_layernorm.bias"])


def check_same_model(model, their_model, eval_set, item_ids: np.ndarray, users: int = 64) -> float:
    """Max difference of the user representations, ours against theirs, on the first `users` rows of `eval_set`
    (our left-padded inputs; theirs right-padded, in their ids)."""
    inputs = eval_set.inputs[:users]
    mine = np.asarray(model.user_representation(jnp.asarray(inputs)))
    right = np.zeros_like(inputs, dtype=np.int64)
    lengths = (inputs != 0).sum(1)
    for row, n in enumerate(lengths):
        right[row, :n] = item_ids[inputs[row, inputs.shape[1] - n :]]
    their_model.add_head = False  # the last layer norm's states, not the scores
    try:
        with torch.no_grad():
            theirs = their_model(torch.tensor(right), None).numpy()
    finally:
        their_model.add_head = True
    return float(np.abs(mine - theirs[np.arange(len(lengths)), lengths - 1]).max())


def compare_training_rows(run, data_path: Path) -> dict[str, int]:
    """Rows of SASRec+'s CausalLMDataset(train, 200) against our run's training rows, per user, in original ids.
    Needs their `datasets` / `preprocess` importable (`--src` on sys.path)."""
    import pandas as pd
    from datasets import CausalLMDataset
    from preprocess import add_time_idx

    data = add_time_idx(pd.read_csv(data_path, sep=" ", header=None, names=["user_id", "item_id"]), sort=False)
    theirs = CausalLMDataset(data[data.time_idx_reversed >= 2], max_length=200)  # run.py's prepare_data
    their_rows = {user: theirs[i] for i, user in enumerate(theirs.user_ids)}
    arrays, user_ids, item_ids = run.arrays, run.split.data.user_ids, run.split.data.item_ids
    differ = 0
    for row, user in enumerate(arrays.users):
        inputs, targets = arrays.inputs[row], arrays.targets[row]
        mine = item_ids[inputs[inputs != 0]], item_ids[targets[targets != 0]]
        theirs_row = their_rows.pop(user_ids[user], None)
        same = theirs_row is not None and all(
            np.array_equal(a, b) for a, b in zip(mine, (theirs_row["input_ids"], theirs_row["labels"]), strict=True)
        )
        differ += not same
    return {"training_rows": len(arrays.users), "rows_that_differ": differ, "their_rows_not_in_ours": len(their_rows)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, required=True, help="the src/ folder of sasrec-bert4rec-recsys23")
    parser.add_argument("--run-dir", type=Path, required=True, help="a sasrec_plus_epochs.py run: its state.pt")
    parser.add_argument("--data", type=Path, default=ML1M)
    args = parser.parse_args(argv)
    state_path = args.run_dir / "state.pt"
    if not state_path.exists():
        sys.exit(f"--run-dir={args.run_dir}: no state.pt (a sasrec_plus_epochs.py --run-dir)")
    saved = torch.load(state_path, weights_only=False)["state"]
    if saved["best_weights"] is None:
        sys.exit(f"{state_path}: no best weights yet (the run has not validated an epoch)")
    weights = {k.removeprefix("model."): v.float().numpy() for k, v in saved["best_weights"].items()}

    from recattn_jax.figures.runs import compose_config
    from recattn_jax.train.run_setup import prepare_run

    workdir = tempfile.TemporaryDirectory()  # the run directory prepare_run needs; nothing is kept
    run, state = prepare_run(compose_config([*SASREC_PLUS, f"data.path={args.data}"]), workdir.name)
    model, item_ids = run.model(state), run.split.data.item_ids
    load_torch_weights(model, weights, item_ids)

    stub_unused_imports()
    sys.path.insert(0, str(args.src))
    from models import SASRec

    their_model = SASRec(item_num=weights["item_emb.weight"].shape[0] - 1, maxlen=200, hidden_units=64, num_blocks=2)
    their_model.load_state_dict({k: torch.tensor(v) for k, v in weights.items()})
    gap = check_same_model(model, their_model.eval(), run.eval_sets["valid"], item_ids)
    if gap > 1e-4:
        sys.exit(f"the copied model differs from theirs: user representations {gap:.2e} apart")
    print(json.dumps({"epoch": saved["best_epoch"], "user_representation_max_diff": gap}))
    print(json.dumps(compare_training_rows(run, args.data)))
    for name in ("valid", "test"):
        full = run.evaluate(model, name)["full"]
        print(
            json.dumps(
                {
                    "set": name,
                    "NDCG@10": full["NDCG@10"],
                    "HR@10": full["HR@10"],
                    "users": len(run.eval_sets[name].users),
                }
            )
        )
    result = args.run_dir / "result.json"
    if result.exists():
        print(json.dumps({"their_result.json": json.loads(result.read_text())}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
