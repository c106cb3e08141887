"""Train and evaluate a recommender: `python -m experiments.train [overrides]`.

Returns valid NDCG@10 (full ranking) so Hydra sweepers can optimise it.
"""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from recattn_jax.config import register_configs, to_config
from recattn_jax.errors import RecattnError
from recattn_jax.train.logs import print_config
from recattn_jax.train.loop import format_metrics, train_and_evaluate
from recattn_jax.train.run_state import RunStopped

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    try:
        config = to_config(cfg)
        print_config(config)
        results = train_and_evaluate(config, HydraConfig.get().runtime.output_dir)
    except RecattnError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except RunStopped as e:
        print(e)
        return float("nan")
    print(format_metrics(results))
    print(
        f"{results['epochs']} epochs, {results['seconds_per_epoch']:.2f} s/epoch; results in "
        f"{HydraConfig.get().runtime.output_dir}/results.json"
    )
    return results["valid"]["full"]["NDCG@10"]


if __name__ == "__main__":
    main()
