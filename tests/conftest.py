"""Shared fixtures."""

import pytest


@pytest.fixture(scope="module")
def fast_compile():
    """Tiny models: XLA's optimisation passes cost more than they save (model tests
    request it with ``pytestmark = pytest.mark.usefixtures("fast_compile")``)."""
    import jax

    old = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", old)
