"""Train and evaluate a recommender: `python -m experiments.train [overrides]`.

Returns valid NDCG@10 (full ranking) so Hydra sweepers can optimise it. Bad input ends with one line
and exit code 2 (`RECATTN_DEBUG=1` shows the traceback); Ctrl-C / SIGTERM say how to resume; a run stopped
by `train.stop_after_steps` says how to continue and exits 3.
"""

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from recattn_jax.cli import EXIT_STOPPED, UserErrorExit, hydra_entry, run_entry
from recattn_jax.config import SELECTION_METRIC, register_configs, to_config
from recattn_jax.config_checks import check_config
from recattn_jax.sweep.aggregate import FAILED_FILE
from recattn_jax.train.logs import print_config
from recattn_jax.train.loop import train_and_evaluate
from recattn_jax.train.report import format_metrics
from recattn_jax.train.run_dir import resume_hint
from recattn_jax.train.run_state import RunStopped

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    workdir = Path(HydraConfig.get().runtime.output_dir)

    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # "Unable to initialize backend 'tpu'"

    def train():
        config = to_config(cfg)
        check_config(config)  # before the config is printed: a bad value is the last line, alone
        print_config(config)
        return train_and_evaluate(config, workdir)

    try:
        results = run_entry(train, on_interrupt=lambda: resume_hint(workdir))
    except RunStopped as e:
        print(e)
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            sys.exit(EXIT_STOPPED)  # not finished: a script resumes until the exit status is 0
        return float("nan")
    except (UserErrorExit, Exception) as e:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            raise
        # one job of a sweep: the others still run; the reason goes into the job's folder, summary.md lists it and
        # the sweep exits 2 at its end (recattn_jax/sweep/callback.py)
        reason = e.reason if isinstance(e, UserErrorExit) else f"{type(e).__name__}: {e}"
        if not isinstance(e, UserErrorExit):
            logging.getLogger(__name__).exception("job failed")
        (workdir / FAILED_FILE).write_text(reason.strip().replace("\n", " ") + "\n")
        return float("nan")
    print(format_metrics(results))
    print(f"{results['epochs']} epochs, {results['seconds_per_epoch']:.2f} s/epoch; results in {workdir}/results.json")
    return results["valid"]["full"][SELECTION_METRIC]


if __name__ == "__main__":
    hydra_entry(main)
