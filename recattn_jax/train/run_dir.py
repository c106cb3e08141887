"""The run directory before training starts: never mix two runs, never resume nothing, store paths resolved.

- A fresh run (no `train.resume`) refuses a directory that holds another run's checkpoints or results:
  continuing it needs `train.resume=true`, a new run a new `hydra.run.dir`.
- `train.resume=true` needs something to resume: the interrupted run's `config.yaml` or a checkpoint.
- Data paths are stored absolute, so `recommend` reads the same files from any working directory.
- Several processes must share one run directory (orbax writes checkpoints collectively): process 0
  writes a token file, the others read it after a barrier, and all fail with one line if one cannot.
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import jax

from recattn_jax.config import Config
from recattn_jax.errors import ConfigError, DataError
from recattn_jax.train.run_state import check_resumable

TOKEN_FILE = ".run_dir_token"


def checkpoint_steps(directory: Path) -> list[int]:
    """Steps of the finished orbax checkpoints in `directory` (folders named by their step), ascending."""
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit())


def prepare_run_dir(config: Config, workdir: Path) -> None:
    """Create `workdir`; refuse to mix a fresh run into a used one, or to resume nothing."""
    workdir.mkdir(parents=True, exist_ok=True)
    held = [f"{name}/" for name in ("checkpoints", "latest") if checkpoint_steps(workdir / name)]
    held += ["results.json"] if (workdir / "results.json").exists() else []
    if config.train.resume:
        if not (workdir / "config.yaml").exists() and not checkpoint_steps(workdir / "latest"):
            raise ConfigError(
                f"train.resume=true: nothing to resume in {workdir} (no config.yaml, no checkpoint in latest/); "
                "point hydra.run.dir at the interrupted run, or drop train.resume to start a new run"
            )
        check_resumable(config, workdir)
    elif held:
        raise ConfigError(
            f"hydra.run.dir={workdir} already holds a run ({', '.join(held)}): continue it with train.resume=true, "
            "or choose a new hydra.run.dir"
        )


def with_resolved_paths(config: Config) -> Config:
    """`config` with `data.path` and `data.item_features` absolute (found as `resolve_path` finds them)."""
    from recattn_jax.data.load import resolve_path

    data = config.data
    resolved = {}
    if data.path and data.name != "synthetic":
        resolved["path"] = str(resolve_path(data.path).resolve())  # a missing file: DataError, before any write
    if data.item_features:
        try:
            resolved["item_features"] = str(resolve_path(data.item_features).resolve())
        except DataError:
            pass  # unused unless model.item_features / user_features ask for it, which then say it is missing
    if not resolved:
        return config
    return dataclasses.replace(config, data=dataclasses.replace(data, **resolved))


def check_shared_run_dir(workdir: Path) -> None:
    """Several processes: every one sees the file process 0 wrote into `workdir`, else all stop with one line."""
    if jax.process_count() == 1:
        return
    import numpy as np
    from jax.experimental import multihost_utils

    token = uuid.uuid4().int % (1 << 31) if jax.process_index() == 0 else 0
    path = workdir / TOKEN_FILE
    if jax.process_index() == 0:
        path.write_text(str(token))
    token = int(multihost_utils.broadcast_one_to_all(np.int32(token)))
    multihost_utils.sync_global_devices("recattn_jax run directory token written")
    try:
        seen = int(path.read_text()) == token
    except (OSError, ValueError):
        seen = False
    everyone = multihost_utils.process_allgather(np.int32(seen))
    missing = [i for i, ok in enumerate(np.asarray(everyone).reshape(-1)) if not ok]
    if missing:
        raise ConfigError(
            f"hydra.run.dir={workdir} is not the same directory for every process: process(es) {missing} do not "
            "see the file process 0 wrote there; put the run directory on a filesystem all processes share"
        )


def resume_hint(workdir: Path) -> str:
    """How to continue an interrupted run in `workdir`, from its latest complete checkpoint."""
    steps = checkpoint_steps(workdir / "latest")
    where = f"from step {steps[-1]}" if steps else "from the start (no checkpoint yet)"
    return f"continue {where} with train.resume=true hydra.run.dir={workdir}"


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: a kill never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


DATA_FILE = "data_fingerprint.json"


def data_fingerprint(sequences: list) -> dict:
    """Users, items, interactions and a digest of every user's item sequence (remapped ids, in order)."""
    import hashlib

    import numpy as np

    digest = hashlib.sha1()
    lengths = np.asarray([len(s) for s in sequences], np.int64)
    digest.update(lengths.tobytes())
    digest.update(np.concatenate(sequences).astype(np.int32).tobytes() if len(sequences) else b"")
    return {"users": len(sequences), "interactions": int(lengths.sum()), "sha1": digest.hexdigest()}


def saved_fingerprint(workdir: Path) -> dict | None:
    """The data fingerprint a run recorded in `workdir`; None where it has none (a run from before it was
    written, or a kill while writing it: nothing to compare with)."""
    import json

    try:
        return json.loads((workdir / DATA_FILE).read_text())
    except (OSError, ValueError):
        return None


def check_same_data(config: Config, workdir: Path, fingerprint: dict, write: bool) -> None:
    """A resumed run trains on the data the interrupted one trained on; a fresh run records what it reads."""
    import json

    path = workdir / DATA_FILE
    if config.train.resume and path.exists():
        saved = saved_fingerprint(workdir)
        if saved is not None and saved != fingerprint:
            now, then = fingerprint, saved
            raise ConfigError(
                f"train.resume=true in {workdir}: the data changed since the interrupted run (now {now['users']} "
                f"users, {now['interactions']} interactions; then {then.get('users')}, {then.get('interactions')}): "
                "resume is impossible; start a new run in a new hydra.run.dir"
            )
    elif write:
        write_atomic(path, json.dumps(fingerprint))
