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

from recattn_jax.config import ModelConfig, TrainConfig
from recattn_jax.losses import full_cross_entropy, next_item_loss
from recattn_jax.models import build_model
from recattn_jax.train.step import make_optimizer, make_train_step

torch = pytest.importorskip("torch", reason="the reference is torch (pip install -e '.[test]')")

ITEMS, MAX_LEN, DIM, HEADS, BLOCKS = 40, 9, 16, 2, 2
LENGTHS = (9, 5, 1, 7)  # rows of every length class: full, padded, a single item


class TorchSASRec(torch.nn.Module):
    """SASRec's block as the SASRec.pytorch / SASRec+ code writes it: x = emb * sqrt(D) + pos, padded slots
    zeroed; per block q = LN(x), x = LN(q + MHA(q, x, x)), x = x + FFN(x), padded slots zeroed; a final LN;
    scores against the input item table. Rows are right-padded and position ids are column indices.

    `dropout` where SASRec+'s models.py puts it: on the embedded sequence (before the padding mask), on the
    attention weights (MultiheadAttention's own), and in the FFN after each of its two projections."""

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.dropout = torch.nn.Dropout(dropout)
        self.items = torch.nn.Embedding(ITEMS + 1, DIM, padding_idx=0)
        self.positions = torch.nn.Embedding(MAX_LEN, DIM)
        norm = lambda: torch.nn.LayerNorm(DIM, eps=1e-8)  # noqa: E731
        self.attn_norms = torch.nn.ModuleList([norm() for _ in range(BLOCKS)])
        self.attentions = torch.nn.ModuleList(
            [torch.nn.MultiheadAttention(DIM, HEADS, dropout=dropout, batch_first=True) for _ in range(BLOCKS)]
        )
        self.ffn_norms = torch.nn.ModuleList([norm() for _ in range(BLOCKS)])
        self.inner = torch.nn.ModuleList([torch.nn.Linear(DIM, DIM) for _ in range(BLOCKS)])
        self.outer = torch.nn.ModuleList([torch.nn.Linear(DIM, DIM) for _ in range(BLOCKS)])
        self.final_norm = norm()

    def forward(self, seq):
        length = seq.shape[1]
        keep = (seq != 0).unsqueeze(-1).to(torch.float32)
        x = self.items(seq) * DIM**0.5 + self.positions(torch.arange(length))
        x = self.dropout(x) * keep
        future = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)  # True: may not attend
        for i in range(BLOCKS):
            q = self.attn_norms[i](x)
            a, _ = self.attentions[i](q, x, x, attn_mask=future, need_weights=False)
            x = self.ffn_norms[i](q + a)
            x = (x + self.dropout(self.outer[i](torch.relu(self.dropout(self.inner[i](x)))))) * keep
        return self.final_norm(x)


def ours(dropout: float = 0.1, scale: float = 0.4):
    """Our SASRec with SASRec+'s settings, every parameter redrawn about its usual centre with std `scale`."""
    config = ModelConfig(
        max_len=MAX_LEN,
        hidden=DIM,
        blocks=BLOCKS,
        heads=HEADS,
        dropout=dropout,
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
            param[...] = jnp.asarray(rng.normal(centre, scale, param.shape), jnp.float32)
    items = model.embedding.items.embedding
    items[...] = items[...].at[0].set(0.0)  # the padding row, zero as torch's padding_idx keeps it
    return model


def to_torch(model, dropout: float = 0.0) -> TorchSASRec:
    """A TorchSASRec holding `model`'s weights (flax kernels are [in, out], torch weights [out, in])."""
    ref = TorchSASRec(dropout)
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


def rows(lengths=LENGTHS, seed: int = 2):
    """One batch of histories, left-padded (ours) and right-padded (SASRec+'s collate), with next-item targets."""
    rng = np.random.default_rng(seed)
    histories = [rng.choice(np.arange(1, ITEMS + 1), n + 1, replace=False) for n in lengths]
    left_in, left_out, right_in, right_out = (np.zeros((len(lengths), MAX_LEN), np.int64) for _ in range(4))
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


def torch_ce_step(ref, optimizer, right_in, right_out) -> float:
    """One step of SASRec+'s training on a right-padded batch: token-mean CE over items 1..I, then Adam."""
    optimizer.zero_grad()
    logits = ref(torch.tensor(right_in)) @ ref.items.weight[1:].T
    labels = torch.tensor(np.where(right_out > 0, right_out - 1, -100))
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, ITEMS), labels.reshape(-1), ignore_index=-100)
    loss.backward()
    optimizer.step()
    return loss.item()


def test_many_adam_steps_track_torch_adam(steps=60):
    """Our training step (train/step.py: the config's Adam, full CE, the jitted update) against torch.optim.Adam
    on SASRec+'s model, from the same weights (drawn at SASRec+'s init scale, N(0, 0.02^2)) on the same batches
    of mixed lengths, dropout 0: every step's loss and, at the end, every weight agree. Covers what one
    forward / backward cannot: the optimizer's moments and bias correction, lr, betas, eps, and the loss's
    weighting across batches of different sizes, over many steps.

    The tolerance sits far below how far training moves each weight (asserted too). One parameter is not
    compared: the key projection's bias gets a zero gradient in exact arithmetic (a score shift shared by a
    query's keys, which softmax ignores), so Adam turns rounding noise in it into steps of size lr;
    the states compared at the end show that it changes nothing."""
    model = ours(dropout=0.0, scale=0.02)
    ref = to_torch(model).train()  # dropout 0: train mode differs from eval only in dropout
    start = {name: value.clone() for name, value in ref.state_dict().items()}
    optimizer = nnx.Optimizer(model, make_optimizer(TrainConfig(beta2=0.999)), wrt=nnx.Param)  # sasrec_ml1m_ce's
    graphdef, state = nnx.split((model, optimizer))
    train_step = make_train_step(graphdef, next_item_loss("ce"))
    torch_adam = torch.optim.Adam(ref.parameters(), lr=1e-3)  # SASRec+'s modules.py: torch's defaults
    rng = np.random.default_rng(3)
    for step in range(steps):
        left_in, left_out, right_in, right_out = rows(tuple(rng.integers(1, MAX_LEN + 1, 6)), seed=100 + step)
        batch = {"inputs": jnp.asarray(left_in, jnp.int32), "targets": jnp.asarray(left_out, jnp.int32)}
        state, metrics = train_step(state, batch, jax.random.key(0))
        theirs = torch_ce_step(ref, torch_adam, right_in, right_out)
        np.testing.assert_allclose(float(metrics["loss"]), theirs, rtol=1e-5, err_msg=f"step {step}")

    model, _ = nnx.merge(graphdef, state)
    mine, theirs = to_torch(model).state_dict(), ref.state_dict()
    for name, start_value in start.items():
        assert np.abs(theirs[name].numpy() - start_value.numpy()).max() > 2e-3, f"{name} barely trained"
        a, b = mine[name].numpy(), theirs[name].numpy()
        if name.endswith("in_proj_bias"):  # [query; key; value]: the key bias left out, see above
            a, b = np.delete(a, np.s_[DIM : 2 * DIM]), np.delete(b, np.s_[DIM : 2 * DIM])
        np.testing.assert_allclose(a, b, atol=1e-5, err_msg=name)
    left_in, _, right_in, _ = rows()
    with torch.no_grad():
        a, b = real(
            np.asarray(encode(model, jnp.asarray(left_in, jnp.int32))), ref.eval()(torch.tensor(right_in)).numpy()
        )
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-5)


def test_dropout_draws_match_torch_in_distribution(draws=4000):
    """Training-mode states under dropout 0.1, ours against SASRec+'s placement (TorchSASRec(dropout)): over
    `draws` independent draws of the same batch, every state's mean agrees (z-scores of the difference of
    means have the RMS of noise, about 1) and so does each real slot's variance. Weights at scale 0.4 so that
    every dropout site moves the states: one site missing or moved (the embedding's, the FFN's, the attention's
    on its output instead of its weights) or the rate off by 0.02 gives an RMS z of 3 or more here."""
    model = ours(dropout=0.1, scale=0.4)
    ref = to_torch(model, dropout=0.1).train()
    left_in, _, right_in, _ = rows()
    train_encode = nnx.jit(lambda model, seq, key: model.encode(seq, rngs=nnx.Rngs(dropout=key)))
    mine = train_encode(model, jnp.asarray(np.tile(left_in, (draws, 1)), jnp.int32), jax.random.key(1))
    torch.manual_seed(0)
    with torch.no_grad():
        theirs = ref(torch.tensor(np.tile(right_in, (draws, 1)))).numpy()
    # [rows, L, draws, D], so that `real` takes each row's real slots: [slots, draws, D] each
    by_row = lambda x, shape: x.reshape(draws, *shape, DIM).transpose(1, 2, 0, 3)  # noqa: E731
    a, b = real(by_row(np.asarray(mine), left_in.shape), by_row(theirs, right_in.shape))
    assert b.std(1).mean() > 0.05  # the draws differ: dropout is on
    z = (a.mean(1) - b.mean(1)) / np.sqrt((a.var(1) + b.var(1)) / draws)
    assert np.sqrt(np.mean(z**2)) < 1.5
    np.testing.assert_allclose(a.var(1).mean(-1) / b.var(1).mean(-1), 1.0, atol=0.07)


def test_the_reference_would_catch_a_changed_block():
    """The comparison has teeth: SASRec's placement swapped for pre-LN (one line of a block) no longer matches."""
    model = ours()
    for block in model.encoder.blocks:
        block.layer_norm = "pre"
    a, b = real(*states(model))
    assert not np.allclose(a, b, atol=1e-2)
