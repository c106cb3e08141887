"""One place for each default: the schemas in recattn_jax/config.py; conf/ holds only what differs from them."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from recattn_jax.config import SELECTION_K, SELECTION_METRIC, Config, EvalConfig
from recattn_jax.data.synthetic import SyntheticSpec
from recattn_jax.figures.runs import compose_config  # what `python -m experiments.train OVERRIDES` trains

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ("data", "model", "loss", "train", "eval", "kernel", "mesh")  # nodes of Config filled by a group file
GLOBAL_FILES = sorted([CONF / "config.yaml", *CONF.glob("experiment/*.yaml"), *CONF.glob("hparams_search/*.yaml")])
GROUP_FILES = sorted(path for group in GROUPS for path in (CONF / group).glob("*.yaml"))


def body(path: Path) -> dict:
    """The file's keys, without Hydra's own (defaults list, hydra.*)."""
    raw = yaml.safe_load(path.read_text()) or {}
    return {key: value for key, value in raw.items() if key not in ("defaults", "hydra")}


def leaves(node: dict, prefix: str = ""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def schema_default(dotted: str):
    node = Config()
    for key in dotted.split("."):
        node = getattr(node, key)
    return node


def group_choices(path: Path) -> dict[str, str]:
    """group -> option a global file selects: config.yaml's defaults list, then the file's own overrides."""
    choices = {}
    for source in (CONF / "config.yaml", path):
        for entry in (yaml.safe_load(source.read_text()) or {}).get("defaults", []):
            if isinstance(entry, dict):
                for key, value in entry.items():
                    group = key.removeprefix("override ").removeprefix("/")
                    if group in GROUPS:
                        choices[group] = value
    return choices


def redundant_keys(path: Path, package: str) -> list[str]:
    """Keys whose value is the one the config would have without them."""
    found = []
    choices = group_choices(path) if package == "" else {}
    for dotted, value in leaves(body(path), package):
        group = dotted.split(".")[0]
        before = schema_default(dotted)
        if group in choices:  # a global file merges after the group file it selects
            group_values = dict(leaves(body(CONF / group / f"{choices[group]}.yaml"), f"{group}."))
            before = group_values.get(dotted, before)
        if value == before:
            found.append(f"{dotted}: {value!r}")
    return found


@pytest.mark.parametrize("path", GROUP_FILES, ids=lambda p: str(p.relative_to(CONF)))
def test_group_file_holds_only_changed_values(path):
    assert redundant_keys(path, f"{path.parent.name}.") == [], "equal to the schema default: drop them"


@pytest.mark.parametrize("path", GLOBAL_FILES, ids=lambda p: str(p.relative_to(CONF)))
def test_global_file_holds_only_changed_values(path):
    assert redundant_keys(path, "") == [], "equal to the schema default (or the selected group file): drop them"


def test_default_run_is_the_schema_defaults():
    assert compose_config([]) == Config()


# what the reproductions reproduce, whatever the schema defaults become (their headers cite these settings)
PUBLISHED = {
    "sasrec_ml1m_bce": {  # pmixer/SASRec.pytorch
        "model": {"name": "sasrec", "max_len": 200, "hidden": 50, "blocks": 2, "heads": 1, "dropout": 0.2},
        "loss": {"name": "bce", "num_negatives": 1},
        "train": {"epochs": 20, "batch_size": 128, "optimizer": "adam", "lr": 1e-3, "beta1": 0.9, "beta2": 0.98},
    },
    "sasrec_ml1m_ce": {  # Klenitskiy & Vasilev 2023, SASRec+
        "model": {"name": "sasrec", "max_len": 200, "hidden": 64, "blocks": 2, "heads": 1, "dropout": 0.1},
        "loss": {"name": "ce"},
        "train": {"batch_size": 128, "optimizer": "adam", "lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "patience": 10},
    },
    "sasrec_ml1m_sampled3000": {  # the same, SASRec+ 3000: 3000 uniform negatives per row outside its items
        "model": {"name": "sasrec", "max_len": 200, "hidden": 64, "blocks": 2, "heads": 1, "dropout": 0.1},
        "loss": {"name": "sampled_softmax", "num_negatives": 3000, "sampler": "uniform"},
        "train": {"batch_size": 128, "optimizer": "adam", "lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "patience": 10},
    },
}


@pytest.mark.parametrize("experiment", sorted(PUBLISHED))
def test_reproductions_keep_the_published_setting(experiment):
    config = dataclasses.asdict(compose_config([f"experiment={experiment}"]))
    for group, expected in PUBLISHED[experiment].items():
        assert {key: config[group][key] for key in expected} == expected
    assert config["model"]["layer_norm"] == "sasrec"  # post-LN, the SASRec paper's placement


def test_sampled3000_is_sasrec_plus_but_for_the_loss():
    sampled = dataclasses.asdict(compose_config(["experiment=sasrec_ml1m_sampled3000"]))
    full = dataclasses.asdict(compose_config(["experiment=sasrec_ml1m_ce"]))
    assert sampled.pop("loss") != full.pop("loss") and sampled == full


@pytest.mark.parametrize("path", sorted(CONF.glob("experiment/*.yaml")), ids=lambda p: p.stem)
def test_model_sweeps_share_sizes(path):
    """An experiment that compares models trains them all at its sizes, whatever a model file sets."""
    sweep = (yaml.safe_load(path.read_text()).get("hydra") or {}).get("sweeper", {}).get("params", {})
    if "model" not in sweep:
        pytest.skip("no model sweep")
    sizes = set()
    for name in str(sweep["model"]).split(","):
        model = compose_config([f"experiment={path.stem}", f"model={name}"]).model
        assert model.name == name
        sizes.add((model.max_len, model.hidden))
    assert len(sizes) == 1, sizes


def test_synthetic_schema_is_the_generator_spec():
    """data.synthetic is SyntheticSpec's fields (written once), plus the event flag."""
    schema = {f.name for f in dataclasses.fields(Config().data.synthetic)}
    assert schema - {f.name for f in dataclasses.fields(SyntheticSpec)} == {"events"}
    assert isinstance(Config().data.synthetic, SyntheticSpec)


def test_selection_metric_is_evaluated_by_default():
    assert SELECTION_METRIC == f"NDCG@{SELECTION_K}" and SELECTION_K in EvalConfig().ks
