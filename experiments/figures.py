"""Regenerate every figure and table: `python -m experiments.figures [out_dir=figures] [only=NAME] [quick=true]`.

models=sasrec,pop limits the models that quick=true trains for the comparison (default: every registered one).

quick=true makes each figure from small settings in minutes on CPU (what the tests run); otherwise the
frozen configs of conf/experiment/ and the cached results in docs/results/ are used. docs/figures.md
shows each figure with its command.
"""

import sys

from omegaconf import OmegaConf

from recattn_jax.errors import RecattnError
from recattn_jax.figures import FIGURES, make_figures

DEFAULTS = {"out_dir": "figures", "only": None, "quick": False, "models": None}


def main(argv: list[str]) -> int:
    try:
        args = OmegaConf.merge(DEFAULTS, OmegaConf.from_dotlist(argv))
        unknown = set(args) - set(DEFAULTS)
        if unknown:
            raise KeyError(f"unknown argument(s) {sorted(unknown)}; use {list(DEFAULTS)}")
        made = make_figures(args.out_dir, args.only, bool(args.quick), args.models)
    except KeyError as e:
        print(f"error: {e.args[0]} (figures: {', '.join(FIGURES)})", file=sys.stderr)
        return 2
    except RecattnError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {sum(len(p) for p in made.values())} files into {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
