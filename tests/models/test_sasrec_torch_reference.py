"""SASRec with SASRec+'s settings against a torch SASRec built as its code builds one (torch.nn.MultiheadAttention,
right-padded rows, positions by column): the same weights give the same states, full-CE loss and gradients.

`experiment=sasrec_ml1m_ce` reproduces SASRec+ (Klenitskiy & Vasilev 2023), whose code is torch; this pins the
forward and backward that its numbers depend on to torch's own attention, layer norm and cross-entropy. One
deviation stays, by design: SASRec+'s softmax also has the padding row (a constant logit 0); ours has items only.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from recattn_jax.config import ModelConfig
from recattn_jax.losses import full_cross_entropy
from recattn_jax.models import build_model

torch = pytest.importorskip("torch", reason="the reference is torch (pip install -e '.[test]')")

ITEMS, MAX_LEN, DIM, HEADS, BLOCKS = 40, 9, 16, 2, 2
LENGTHS = (9, 5, 1, 7)  # rows of every length class: full, padded, a single item


class TorchSASRec(torch.nn.Module):
    """SASRec's block as the SASRec.pytorch / SASRec+ code writes it: x = emb * sqrt(D) + pos, padded slots
    zeroed; per block q = LN(x), x = LN(q + MHA(q, x, x)), x = x + FFN(x), padded slots zeroed; a final LN;
    scores against the input item table. Rows are right-padded and position ids are column indices."""

    def __init__(self):
        super().__init__()
        self.items = torch.nn.Embedding(ITEMS + 1, DIM, padding_idx=0)
        self.positions = torch.nn.Embedding(MAX_LEN, DIM)
        norm = lambda: torch.nn.LayerNorm(DIM, eps=1e-8)  # noqa: E731
        self.attn_norms = torch.nn.ModuleList([norm() for _ in range(BLOCKS)])
        self.attentions = torch.nn.ModuleList(
            [torch.nn.MultiheadAttention(DIM, HEADS, batch_first=True) for _ in range(BLOCKS)]
        )
        self.ffn_norms = torch.nn.ModuleList([norm() for _ in range(BLOCKS)])
        self.inner = torch.nn.ModuleList([torch.nn.Linear(DIM, DIM) for _ in range(BLOCKS)])
        self.outer = torch.nn.ModuleList([torch.nn.Linear(DIM, DIM) for _ in range(BLOCKS)])
        self.final_norm = norm()

    def forward(self, seq):
        length = seq.shape[1]
        keep = (seq != 0).unsqueeze(-1).to(torch.float32)
        x = self.items(seq) * DIM**0.5 + self.positions(torch.arange(length))
        x = x * keep
        future = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)  # True: may not attend
        for i in range(BLOCKS):
            q = self.attn_norms[i](x)
            a, _ = self.attentions[i](q, x, x, attn_mask=future, need_weights=False)
            x = self.ffn_norms[i](q + a)
            x = (x + self.outer[i](torch.relu(self.inner[i](x)))) * keep
        return self.final_norm(x)


def ours():
    config = ModelConfig(
        max_len=MAX_LEN,
        hidden=DIM,
        blocks=BLOCKS,
        heads=HEADS,
        dropout=0.1,
        layer_norm="sasrec",
        ffn="relu",
        attn_dropout="weights",
        positions="from_oldest",
        init="normal",
    )
    model = build_model(config, num_items=ITEMS, backend="reference", rngs=nnx.Rngs(0))
    # every parameter redrawn at a scale where attention, layer norms and biases all matter
    rng = np.random.default_rng(1)
    for path, param in nnx.iter_graph(model):
        if isinstance(param, nnx.Param):
            centre = 1.0 if path[-1] == "scale" else 0.0  # layer-norm gains about 1
            param[...] = jnp.asarray(rng.normal(centre, 0.4, param.shape), jnp.float32)
    items = model.embedding.items.embedding
    items[...] = items[...].at[0].set(0.0)  # the padding row, zero as torch's padding_idx keeps it
    return model


def to_torch(model) -> TorchSASRec:
    """A TorchSASRec holding `model`'s weights (flax kernels are [in, out], torch weights [out, in])."""
    ref = TorchSASRec()
    t = lambda a: torch.tensor(np.asarray(a[...]))  # noqa: E731
    with torch.no_grad():
        ref.items.weight.copy_(t(model.embedding.items.embedding))
        ref.positions.weight.copy_(t(model.embedding.positions.embedding))
        for i, block in enumerate(model.encoder.blocks):
            attn = block.attention
            qkv = (attn.query, attn.key, attn.value)  # torch packs them as one [3D, D] projection
            ref.attentions[i].in_proj_weight.copy_(torch.cat([t(p.kernel).T for p in qkv]))
            ref.attentions[i].in_proj_bias.copy_(torch.cat([t(p.bias) for p in qkv]))
            ref.attentions[i].out_proj.weight.copy_(t(attn.out.kernel).T)
            ref.attentions[i].out_proj.bias.copy_(t(attn.out.bias))
            for norm, theirs in ((block.attn_norm, ref.attn_norms[i]), (block.ffn_norm, ref.ffn_norms[i])):
                theirs.weight.copy_(t(norm.scale))
                theirs.bias.copy_(t(norm.bias))
            for linear, theirs in ((block.ffn.inner, ref.inner[i]), (block.ffn.outer, ref.outer[i])):
                theirs.weight.copy_(t(linear.kernel).T)
                theirs.bias.copy_(t(linear.bias))
        ref.final_norm.weight.copy_(t(model.encoder.final_norm.scale))
        ref.final_norm.bias.copy_(t(model.encoder.final_norm.bias))
    return ref.eval()


def rows():
    """One batch of histories, left-padded (ours) and right-padded (SASRec+'s collate), with next-item targets."""
    rng = np.random.default_rng(2)
    histories = [rng.choice(np.arange(1, ITEMS + 1), n + 1, replace=False) for n in LENGTHS]
    left_in, left_out, right_in, right_out = (np.zeros((len(LENGTHS), MAX_LEN), np.int64) for _ in range(4))
    for r, h in enumerate(histories):
        n = len(h) - 1
        left_in[r, MAX_LEN - n :], left_out[r, MAX_LEN - n :] = h[:-1], h[1:]
        right_in[r, :n], right_out[r, :n] = h[:-1], h[1:]
    return left_in, left_out, right_in, right_out


encode = nnx.jit(lambda model, seq: model.encode(seq))
user_representation = nnx.jit(lambda model, seq: model.user_representation(seq))


def real(left, right, lengths=LENGTHS):
    """The real slots of each row, ours (left-padded) and SASRec+'s (right-padded), stacked in the same order."""
    return (
        np.concatenate([left[r, MAX_LEN - n :] for r, n in enumerate(lengths)]),
        np.concatenate([right[r, :n] for r, n in enumerate(lengths)]),
    )


def states(model):
    """Our states and the torch reference's (same weights, eval mode) at the batch's real slots, in one order."""
    left_in, _, right_in, _ = rows()
    mine = np.asarray(encode(model, jnp.asarray(left_in, jnp.int32)))
    with torch.no_grad():
        theirs = to_torch(model)(torch.tensor(right_in)).numpy()
    return mine, theirs


@nnx.jit
def loss_and_grads(model, seq, targets):
    def loss(model):
        return full_cross_entropy(model.encode(seq), model.item_table(), targets, jax.random.key(0))

    return nnx.value_and_grad(loss)(model)


def test_states_match_sasrec_plus_torch_model():
    model = ours()
    mine, theirs = states(model)
    a, b = real(mine, theirs)
    assert np.abs(b).max() > 0.5  # states of real size, not near-zero ones that would match anything
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-5)
    # the user representation (the newest state) is the one SASRec+ ranks with
    last = np.asarray(user_representation(model, jnp.asarray(rows()[0], jnp.int32)))
    np.testing.assert_allclose(last, [theirs[r, n - 1] for r, n in enumerate(LENGTHS)], atol=2e-5, rtol=1e-5)


def test_full_cross_entropy_and_gradients_match_torch():
    """Token-mean CE over the batch's real targets (torch's ignore_index rows), items 1..I as classes."""
    model = ours()
    left_in, left_out, right_in, right_out = rows()
    loss, grads = loss_and_grads(model, jnp.asarray(left_in, jnp.int32), jnp.asarray(left_out, jnp.int32))

    ref = to_torch(model)
    states = ref(torch.tensor(right_in))
    logits = states @ ref.items.weight[1:].T  # items only: the padding row is not a class here
    labels = torch.tensor(np.where(right_out > 0, right_out - 1, -100))
    ref_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, ITEMS), labels.reshape(-1), ignore_index=-100)
    ref_loss.backward()

    assert ref_loss.item() > 1.0  # far from a trained model's loss: every class gets gradient
    np.testing.assert_allclose(float(loss), ref_loss.item(), rtol=1e-5)
    flat = dict(nnx.to_flat_state(grads))
    grad = lambda *path: np.asarray(flat[path][...])  # noqa: E731
    pairs = [
        (grad("embedding", "items", "embedding"), ref.items.weight.grad, False),
        (grad("embedding", "positions", "embedding"), ref.positions.weight.grad, False),
        (grad("encoder", "final_norm", "scale"), ref.final_norm.weight.grad, False),
    ]
    for i in range(BLOCKS):
        block = ("encoder", "blocks", i)
        pairs += [
            (grad(*block, "attention", "query", "kernel"), ref.attentions[i].in_proj_weight.grad[:DIM], True),
            (grad(*block, "attention", "value", "bias"), ref.attentions[i].in_proj_bias.grad[2 * DIM :], False),
            (grad(*block, "attention", "out", "kernel"), ref.attentions[i].out_proj.weight.grad, True),
            (grad(*block, "ffn", "inner", "kernel"), ref.inner[i].weight.grad, True),
            (grad(*block, "attn_norm", "bias"), ref.attn_norms[i].bias.grad, False),
        ]
    for mine, theirs, transposed in pairs:
        theirs = theirs.numpy().T if transposed else theirs.numpy()
        assert np.abs(theirs).max() > 1e-4
        np.testing.assert_allclose(mine, theirs, atol=2e-5, rtol=1e-4)


def test_the_reference_would_catch_a_changed_block():
    """The comparison has teeth: SASRec's placement swapped for pre-LN (one line of a block) no longer matches."""
    model = ours()
    for block in model.encoder.blocks:
        block.layer_norm = "pre"
    a, b = real(*states(model))
    assert not np.allclose(a, b, atol=1e-2)
