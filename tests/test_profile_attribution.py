"""benchmarks/profile_step.py's attribution: every instruction of a compiled step gets a category, so the
per-category table adds up to the thunks' whole time (a scan's body and XLA-made fusions included)."""

import re

import jax
import jax.numpy as jnp

from benchmarks.profile_step import source_chains
from recattn_jax.losses import full_cross_entropy


def test_every_instruction_of_a_step_with_a_scan_has_a_category():
    hidden = jnp.ones((2, 3, 8)) * 0.1
    table = jnp.linspace(-1, 1, 300 * 8).reshape(300, 8)  # 300 items: the chunked CE scans over item chunks
    targets = jnp.asarray([[1, 2, 0], [5, 0, 0]])

    def step(hidden, table):
        return jax.grad(lambda h, t: full_cross_entropy(h, t, targets, None), argnums=(0, 1))(hidden, table)

    hlo = jax.jit(step).lower(hidden, table).compile().as_text()
    names = re.findall(r"^\s*(?:ROOT )?%([\w.\-]+) = ", hlo, flags=re.MULTILINE)
    categories = source_chains(hlo)
    assert names and set(names) <= set(categories)
    assert any(c.startswith("loss") for c in categories.values())  # the CE's scan body is the loss's
    assert any(c.startswith("loss") and c.endswith("[bwd]") for c in categories.values())
    bodies = re.findall(r"body=%([\w.\-]+)", hlo)  # the item-chunk scan's while loops (forward, backward)
    assert bodies
    for body in bodies:
        members = re.search(r"%" + re.escape(body) + r" .*?\{\n(.*?)\n\}", hlo, flags=re.DOTALL).group(1)
        inside = [categories[n] for n in re.findall(r"^\s*(?:ROOT )?%([\w.\-]+) = ", members, flags=re.MULTILINE)]
        assert any(c.startswith("loss") for c in inside), body
