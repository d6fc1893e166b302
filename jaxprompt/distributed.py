"""Multi-host helpers: start jax.distributed, build global arrays from per-host data.

On a multi-host TPU slice every host runs the same `jaxprompt train`; each reads only its
share of every global batch (seqio.ShardInfo) and `global_batch` assembles the global
array; params and the train state are placed with `place`, which asks each host only for
the slices its own devices hold.
"""

from __future__ import annotations

import logging
import os

import jax
import numpy as np
from jax.experimental import multihost_utils

logger = logging.getLogger(__name__)


def is_multihost_environment() -> bool:
    """True on a multi-host TPU slice (several worker hostnames) or with a coordinator set."""
    hostnames = os.environ.get("TPU_WORKER_HOSTNAMES", "")
    return "," in hostnames or bool(os.environ.get("JAX_COORDINATOR_ADDRESS"))


def maybe_initialize(force: bool | None = None, **kwargs) -> bool:
    """Calls jax.distributed.initialize() when needed (force=True: always; False: never).

    kwargs (coordinator_address, num_processes, process_id, local_device_ids) are passed
    through; on Cloud TPU they are discovered automatically.
    """
    wanted = is_multihost_environment() if force is None else force
    if not wanted:
        return False
    jax.distributed.initialize(**kwargs)
    logger.info(
        "jax.distributed: process %d of %d, %d local / %d global devices",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
    return True


def is_leader() -> bool:
    """The process that writes logs, plots and plain files (orbax saves from all)."""
    return jax.process_index() == 0


def global_batch(local_batch: dict, sharding) -> dict:
    """This host's rows -> global arrays split by `sharding` along the batch axis."""
    if jax.process_count() == 1:
        return jax.device_put(local_batch, sharding)
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
        for k, v in local_batch.items()
    }


def place(tree, shardings):
    """Puts host values (the same on every host) onto devices; each host supplies its slices."""
    if jax.process_count() == 1:
        return jax.device_put(tree, shardings)

    def put(value, sharding):
        value = np.asarray(jax.device_get(value)) if not isinstance(value, np.ndarray) else value
        return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])

    return jax.tree.map(put, tree, shardings)


def fetch(tree):
    """Arrays (or a pytree of them) as numpy on every host; call it on every host.

    Replicated and fully addressable arrays are read locally; an array sharded across
    hosts (a deep prompt split over the model axis) is all-gathered.
    """

    def one(array) -> np.ndarray:
        if getattr(array, "is_fully_addressable", True):
            return np.asarray(jax.device_get(array))
        if array.sharding.is_fully_replicated:
            return np.asarray(array.addressable_data(0))
        return np.asarray(multihost_utils.process_allgather(array, tiled=True))

    return jax.tree.map(one, tree)
