"""Evaluation inputs on a device mesh, for one process or many (a pod slice).

Every host runs the same evaluation loop over the same global batches. A batch array
[G, ...] is split along G over the mesh axis of the 'batch' rule, and each process builds
only the rows its own devices hold (`rows`: it tokenizes only its share); prompts and label
candidates are replicated; outputs are all-gathered (`gather`), so every host holds every
prediction in the original order and computes the same metrics (process 0 writes them).
Without a mesh (one process), `LocalPlacement` does the same on the default device, so the
evaluation loops have one code path.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxprompt import distributed, partitioning


class Placement:
    def __init__(self, mesh: Mesh, rules=partitioning.DEFAULT_RULES):
        self.mesh = mesh
        self.batch_sharding = partitioning.batch_sharding(mesh, rules)
        spec = self.batch_sharding.spec
        self.data_size = int(np.prod([mesh.shape[a] for a in spec[:1] if a])) if spec else 1

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.data_size:
            raise ValueError(
                f"batch_size {batch_size} is not divisible by the mesh's data axis "
                f"({self.data_size} devices); use a multiple of {self.data_size}."
            )

    def rows(
        self, make_rows: Callable[[slice], np.ndarray], shape: tuple[int, ...], dtype
    ) -> jax.Array:
        """The global array [G, ...]; `make_rows(slice)` gives the rows of one shard."""

        def shard(index):
            return np.asarray(make_rows(index[0]), dtype)[(slice(None),) + tuple(index[1:])]

        return jax.make_array_from_callback(shape, self.batch_sharding, shard)

    def replicated(self, tree):
        """Host values (the same on every host) replicated over the mesh; arrays already
        placed across processes are kept as they are."""
        sharding = partitioning.replicated(self.mesh)

        def put(value):
            if isinstance(value, jax.Array) and not value.is_fully_addressable:
                return value
            return distributed.place(np.asarray(value), sharding)

        return jax.tree.map(put, tree)

    def gather(self, array) -> np.ndarray:
        return distributed.fetch(array)


class LocalPlacement:
    """One process, no mesh: whole arrays on the default device."""

    def check_batch(self, batch_size: int) -> None:
        pass

    def rows(
        self, make_rows: Callable[[slice], np.ndarray], shape: tuple[int, ...], dtype
    ) -> jax.Array:
        return jnp.asarray(np.asarray(make_rows(slice(None)), dtype))

    def replicated(self, tree):
        return jax.tree.map(jnp.asarray, tree)

    def gather(self, array) -> np.ndarray:
        return np.asarray(array)


def default_placement(mesh: Mesh | None) -> Placement | LocalPlacement:
    """A Placement for `mesh`; on several processes without a mesh, one over all devices;
    otherwise a LocalPlacement."""
    if mesh is None and jax.process_count() > 1:
        mesh = partitioning.make_mesh()
    return Placement(mesh) if mesh is not None else LocalPlacement()


__all__ = ["LocalPlacement", "Placement", "default_placement"]
