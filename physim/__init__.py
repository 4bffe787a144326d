"""physim: a deterministic 2D physics-world video simulator and generalization testbed.

Public surface::

    import physim
    spec = physim.scenario("uniform")              # frozen scenario spec from the registry
    rec = spec.sample(seed=0, split="train")       # a Record (objects, trajectory, metadata)
    traj = physim.simulate(objects, pos0, vel0)    # exact event-driven discs -> Trajectory
    frames = physim.render(rec.trajectory, rec.objects, resolution=128)  # (T, R, R, 3) uint8
"""

from physim import world
from physim.record import Record, Trajectory
from physim.world import Objects

__version__ = "0.1.0"

__all__ = ["Objects", "Record", "Trajectory", "world", "__version__"]


def __getattr__(name):
    # Lazy imports keep `import physim` cheap (Numba compiles on first use only). The
    # value is then bound in the module, so later lookups skip this function (it cost a
    # microsecond of every per-video `physim.simulate` call).
    if name == "simulate":
        from physim.physics import simulate as value
    elif name == "render":
        # The module is callable (it forwards to physim.render.render), so the name means
        # the same whether or not the submodule was imported first.
        import physim.render as value
    elif name == "scenario":
        from physim.scenarios import scenario as value
    elif name == "dataset":
        import physim.dataset as value
    else:
        raise AttributeError(f"module 'physim' has no attribute {name!r}")
    globals()[name] = value
    return value
