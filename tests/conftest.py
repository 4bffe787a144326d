"""Shared fixtures."""

import os

import pytest

# Tests that run `physim train` / `physim sample` in-process must not fill the user's
# JAX compilation cache (~/.cache/physim/jax); the one test of the cache passes a folder.
os.environ.setdefault("PHYSIM_COMPILE_CACHE", "")


@pytest.fixture(scope="module")
def fast_compile():
    """Tiny models: XLA's optimisation passes cost more than they save (model tests
    request it with ``pytestmark = pytest.mark.usefixtures("fast_compile")``)."""
    import jax

    old = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", old)
