"""Write top-K unseen items per user from a run's best checkpoint:
`python -m experiments.recommend run_dir=DIR k=10 out=recs.csv [users=[1,2]] [item_chunk=N]`."""

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from recattn_jax.errors import RecattnError
from recattn_jax.recommend import recommend


@hydra.main(version_base="1.3", config_path="../conf", config_name="recommend")
def main(cfg: DictConfig) -> None:
    users = cfg.users
    if users is not None:
        users = OmegaConf.to_object(users) if OmegaConf.is_list(users) else [users]  # users=5 is one user
    try:
        recs = recommend(cfg.run_dir, k=cfg.k, users=users, batch_size=cfg.batch_size, item_chunk=cfg.item_chunk)
    except RecattnError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    recs.to_csv(cfg.out, index=False)
    print(f"wrote {len(recs)} rows ({recs['user'].nunique()} users x top {cfg.k}) to {cfg.out}")


if __name__ == "__main__":
    main()
