"""Write top-K unseen items per user from a run's best checkpoint:
`python -m experiments.recommend run_dir=DIR k=10 out=recs.csv [users=[1,2]] [item_chunk=N]`.

Misuse (a bad k, an `out` that cannot be written, an unknown user) ends with one line and exit code 2."""

import hydra
from omegaconf import DictConfig, OmegaConf

from recattn_jax.cli import hydra_entry, run_entry
from recattn_jax.errors import ConfigError
from recattn_jax.recommend import check_out_path, check_recommend_args, recommend


@hydra.main(version_base="1.3", config_path="../conf", config_name="recommend")
def main(cfg: DictConfig) -> None:
    def write():
        if OmegaConf.is_missing(cfg, "run_dir"):
            raise ConfigError("run_dir=DIR is required: the directory of a finished training run")
        users = cfg.users
        if users is not None:
            users = OmegaConf.to_object(users) if OmegaConf.is_list(users) else [users]  # users=5 is one user
        check_recommend_args(cfg.k, users, cfg.batch_size, cfg.item_chunk)  # before the run is loaded
        out = check_out_path(cfg.out)
        recs = recommend(cfg.run_dir, k=cfg.k, users=users, batch_size=cfg.batch_size, item_chunk=cfg.item_chunk)
        try:
            recs.to_csv(out, index=False)
        except OSError as e:
            raise ConfigError(f"out={cfg.out}: cannot be written ({e.strerror or e})") from None
        return recs

    recs = run_entry(write)
    print(f"wrote {len(recs)} rows ({recs['user'].nunique()} users, top {cfg.k} unseen items each) to {cfg.out}")


if __name__ == "__main__":
    hydra_entry(main)
