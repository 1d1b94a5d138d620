"""Where cells run, chosen by name: ``local`` (processes on this machine), ``ray`` (a Ray cluster),
``ddp`` (all torchrun ranks on each cell). Each module registers its backend."""

from lengen.backends import ddp, local, ray_cluster  # noqa: F401  (each import registers a backend)
from lengen.backends.base import BACKENDS, Backend, CellJob, CellStream, make_backend, register_backend
from lengen.backends.local import LocalBackend, default_workers

__all__ = ["BACKENDS", "Backend", "CellJob", "CellStream", "LocalBackend", "default_workers", "make_backend",
           "register_backend"]
