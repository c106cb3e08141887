"""eval.item_chunk: full ranking in chunks of items gives the same metrics as all items at once (1 device)."""

import dataclasses

from flax import nnx

from recattn_jax.data.load import load_split
from recattn_jax.eval.ranking import Evaluator, build_eval_set
from recattn_jax.models import build_model


def test_item_chunks_match_all_items(tiny_config):
    split = load_split(tiny_config.data)
    model = build_model(tiny_config.model, split.data.num_items, backend="reference", rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    config = dataclasses.replace(tiny_config.eval, sampled=False)
    eval_set = build_eval_set(split, "test", tiny_config.model.max_len, config)
    whole = Evaluator(graphdef, config).evaluate(state, eval_set)
    chunked = Evaluator(graphdef, dataclasses.replace(config, item_chunk=7)).evaluate(state, eval_set)
    assert chunked == whole
