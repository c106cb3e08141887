"""Typed configuration: dataclass schemas registered in Hydra's ConfigStore.

The schemas hold every default, once; the YAML groups under conf/ hold only what differs from them
(tests/test_config_defaults.py checks it). A key that is not in a schema is an error.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

from recattn_jax.data.synthetic import SyntheticSpec

# model selection and early stopping: the state with the best valid full-ranking NDCG@10 is kept and tested
SELECTION_METRIC = "NDCG@10"
SELECTION_K = int(SELECTION_METRIC.split("@")[1])  # eval.ks must include it


@dataclasses.dataclass
class SyntheticConfig(SyntheticSpec):
    """The generator's fields (SyntheticSpec, with its defaults) and whether to label events."""

    events: bool = False  # an event type per interaction, click / purchase (data/synthetic_events.py)


@dataclasses.dataclass
class DataConfig:
    name: str = "synthetic"  # synthetic | sasrec_txt | csv (csv also reads .tsv and .parquet)
    path: str | None = None  # relative paths: the working directory first, then the project root
    user_col: str = "user"
    item_col: str = "item"
    time_col: str | None = "timestamp"
    event_col: str | None = None  # e.g. event: a column of event types (click, purchase, ...), embedded per position
    item_features: str | None = None  # a MovieLens folder or an item-feature table (model.item_features=tfidf)
    min_user_interactions: int = 0  # k-core filter, iterated until stable; 0 = off
    min_item_interactions: int = 0
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclasses.dataclass
class ModelConfig:
    name: str = "sasrec"
    max_len: int = 50
    hidden: int = 64
    blocks: int = 2
    heads: int = 1
    dropout: float = 0.2
    layer_norm: str = "sasrec"  # sasrec (the paper's placement) | pre
    ffn: str = "relu"  # sasrec: relu (the paper's) | swiglu feed-forward in each block
    # sasrec: where model.dropout acts in each attention branch: output (its output, as before) | weights (its
    # softmax weights, as SASRec's code and the torch MultiheadAttention of SASRec.pytorch / SASRec+; xla backend)
    attn_dropout: str = "output"
    ffn_mult: int = 1  # sasrec: the feed-forward's inner width in units of hidden (SASRec's 1; LiGR-style stacks use 4)
    residual: str = "plain"  # sasrec: plain | gated (each branch scaled by a sigmoid gate of the stream; LiGR with pre)
    tie_output: bool = True  # sasrec: score with the input item embedding; false = an output item table of its own
    normalize: bool = False  # sasrec: cosine scores (L2-normalised states and items); pair with loss.temperature
    # sasrec: which end of the window position embeddings count from: from_newest (the newest item at max_len-1,
    # as SASRec.pytorch) | from_oldest (the window's oldest item at 0, as right-padded SASRec+ code)
    positions: str = "from_newest"
    # sasrec: xavier (Xavier-normal embeddings, flax's lecun-normal linear kernels) | normal (embeddings, feed-forward
    # and attention-output kernels from N(0, 0.02^2), GPT-2-style, as the SASRec+ code). Xavier's item-table scale
    # is sqrt(2 / (rows + hidden)): 0.024 on ML-1M, 0.006 on Beauty's 54,543 rows, where normal is needed to
    # reproduce SASRec+ (docs/results.md, item 4) | sasrec_plus (normal, and the query, key and value kernels as
    # torch.nn.MultiheadAttention draws its packed in-projection: each parameter from SASRec+'s code's distribution)
    init: str = "xavier"
    candidate_chunk: int = 512  # din: candidate items scored per chunk in full ranking
    train_negatives: int = 8  # din, bpr_mf: sampled negatives per positive in their own training losses
    mask_prob: float = 0.2  # bert4rec: probability that a training position is replaced by [mask]
    item_features: str = "none"  # none | tfidf: item representation fused by attention over its fields
    user_features: bool = False  # add the projected user side-feature vector (data.item_features folder)


@dataclasses.dataclass
class LossConfig:
    name: str = "ce"  # ce: full softmax CE | bce: binary CE, sampled negatives | sampled_softmax | gbce
    num_negatives: int = 1
    gbce_t: float = 0.75  # gbce: calibration t in [0, 1] (0 = plain BCE, 1 = fully calibrated)
    logq_correction: bool = True  # sampled_softmax, in_batch: subtract log(K q) (uniform: q is constant, no term)
    # sampled_softmax's negatives: in_batch (the batch's targets, popularity-distributed) | uniform (num_negatives
    # distinct items per row, outside the row's items, shared by its positions: K&V's SASRec+ 3000)
    sampler: str = "in_batch"
    temperature: float = 1.0  # ce: softmax of logits / temperature
    exclude_seen: bool = False  # ce: negatives leave out the row's earlier items (as seen-filtered full ranking)


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 10  # the default synthetic run: a few minutes on 2 CPU cores
    batch_size: int = 128
    optimizer: str = "adam"  # adam | adamw
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.98
    weight_decay: float = 0.0
    grad_clip: float | None = None  # clip gradients to this global norm; None = no clipping
    warmup_steps: int = 0  # the learning rate rises linearly from 0 to train.lr over these first steps
    lr_schedule: str = "constant"  # constant | cosine (to 0 at the run's last planned step, after the warmup)
    eval_every: int = 1  # epochs between validations
    patience: int = 5  # validations without a better valid SELECTION_METRIC before stopping; 0 = never stop early
    max_steps: int | None = None  # stop after this many steps in total (smoke tests)
    # batches of similar-length rows, padded to a few fixed lengths: ML-1M's padded positions 47% -> 15%, metrics
    # within one seed std of no bucketing (benchmarks/RESULTS.md: BCE, 10 epochs, 3 seeds; full CE on ML-1M learns
    # faster without it and ends level, docs/results.md: one seed to early stopping); false: the plain shuffle, each
    # batch cut to the smallest of those lengths that holds its longest row (data/bucketing.py)
    bucketing: bool = True
    progress: bool = True  # tqdm bar
    # the latest (model, optimizer, position) state, for train.resume; 0 = only when Ctrl-C / SIGTERM stops the run
    ckpt_every_steps: int = 500
    resume: bool = False  # continue the run in hydra.run.dir from its latest checkpoint
    stop_after_steps: int | None = None  # stop as a crash would after this many steps (tests, splitting runs)
    log_every_steps: int = 50  # training-loss records in metrics.jsonl (and TensorBoard)
    tensorboard: bool = True  # event files in tensorboard/ when tensorboardX is installed
    # every training target once per epoch, in windows of max_len targets (data/batches.py: history_windows);
    # false: only each user's newest max_len targets
    whole_history: bool = False
    # validate, select, checkpoint and test an exponential moving average of the weights with this decay per
    # step (train/ema.py); 0: the trained weights themselves
    ema_decay: float = 0.0


@dataclasses.dataclass
class EvalConfig:
    ks: list[int] = field(default_factory=lambda: [1, 5, 10, 20])
    batch_size: int = 32  # users scored at once: bounds the [batch, items] score matrix; 32 was fastest on ML-1M (CPU)
    num_negatives: int = 100  # the sampled protocol of the SASRec paper
    seed: int = 0  # negatives are drawn once from this seed
    sampled: bool = True
    item_chunk: int | None = None  # score items in chunks of this many rows (bounded memory); None = all at once
    # users grouped by history length, each group's histories cut to its bucket length (one compile per group);
    # the same ranks as false (tests/eval/test_eval_buckets.py), less encoder work on padding; false: one group
    bucketing: bool = True


@dataclasses.dataclass
class KernelConfig:
    backend: str = "auto"  # auto | reference | xla | triton | interpret (kernels/README.md)


@dataclasses.dataclass
class MeshConfig:
    """Device mesh: the batch is sharded over `data`, item-row tables over `model` (data x model devices)."""

    data: int | None = None  # None: every device not used by `model`
    model: int = 1


@dataclasses.dataclass
class DistributedConfig:
    """Multi-process start (`jax.distributed.initialize`); None everywhere: single process, or the cluster's env."""

    coordinator: str | None = None  # HOST:PORT of process 0
    num_processes: int | None = None
    process_id: int | None = None
    enabled: bool = False  # true: initialize from the cluster environment (SLURM, ...) without explicit keys


@dataclasses.dataclass
class Config:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    kernel: KernelConfig = field(default_factory=KernelConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)


def register_configs() -> None:
    ConfigStore.instance().store(name="base_config", node=Config)


def to_config(cfg: DictConfig | ListConfig | dict[str, Any]) -> Config:
    """A typed Config from a Hydra DictConfig (or a plain dict), validated against the schema.

    Anything else (a ListConfig: a config.yaml that holds a list) raises, as a key or type error does."""
    config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), cfg))
    assert isinstance(config, Config)  # merged into the Config schema
    return config


def to_dict(config: Config) -> dict[str, Any]:
    return dataclasses.asdict(config)
