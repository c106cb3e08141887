"""recattn_jax: attention-based sequential recommenders in JAX / Flax NNX."""

__version__ = "0.1.0"
