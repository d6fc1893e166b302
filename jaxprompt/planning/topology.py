"""TPU targets for ahead-of-time plans: slice names, jax topologies, published chip figures.

A user types a slice as Cloud TPU names it (`v5e-8`, `v4-8`, `v3-32`) or as jax's topology
(`v5e:2x4`, `v4:2x2x1`, `v3:4x4`); `target_devices` returns the devices of that slice from
libtpu's deviceless compiler, so XLA compiles for the real chips without one.
"""

from __future__ import annotations

import dataclasses
import os

GIB = 2**30


class TopologyError(ValueError):
    """An unknown slice, or no compiler for it."""


@dataclasses.dataclass(frozen=True)
class Chip:
    """Published figures of one chip: bf16 FLOP/s, HBM bytes/s and bytes, TensorCores."""

    flops: float
    bandwidth: float
    hbm_bytes: float
    cores: int
    megacore: bool  # a VM runs the chip's two cores as one JAX device


# v3: 123 TFLOP/s, 900 GB/s, 32 GiB, 2 cores (https://cloud.google.com/tpu/docs/v3); v4: 275,
# 1200, 32 GiB, 2 cores (https://cloud.google.com/tpu/docs/v4); v5e: 197, 819, 16 GiB, 1 core
# (https://cloud.google.com/tpu/docs/v5e); v5p: 459, 2765, 95 GiB, 2 cores
# (https://cloud.google.com/tpu/docs/v5p).
CHIPS = {
    "TPU v3": Chip(123e12, 900e9, 32 * GIB, 2, False),
    "TPU v4": Chip(275e12, 1200e9, 32 * GIB, 2, True),
    "TPU v5 lite": Chip(197e12, 819e9, 16 * GIB, 1, False),
    "TPU v5": Chip(459e12, 2765e9, 95 * GIB, 2, True),
}
GENERATION_KIND = {"v3": "TPU v3", "v4": "TPU v4", "v5e": "TPU v5 lite", "v5p": "TPU v5"}

# Cloud TPU slice names -> jax topology names. v3/v4/v5p count TensorCores (2 per chip),
# v5e counts chips.
_2D = {
    1: "1x1",
    4: "2x2",
    8: "2x4",
    16: "4x4",
    32: "4x8",
    64: "8x8",
    128: "8x16",
    256: "16x16",
    512: "16x32",
    1024: "32x32",
}
_3D = {
    4: "2x2x1",
    8: "2x2x2",
    16: "2x2x4",
    32: "2x4x4",
    64: "4x4x4",
    128: "4x4x8",
    256: "4x8x8",
    512: "8x8x8",
}
SLICES = {
    **{f"v3-{2 * chips}": f"v3:{shape}" for chips, shape in _2D.items() if chips >= 4},
    **{f"v4-{2 * chips}": f"v4:{shape}" for chips, shape in _3D.items()},
    **{f"v5p-{2 * chips}": f"v5p:{shape}" for chips, shape in _3D.items()},
    **{f"v5e-{chips}": f"v5e:{shape}" for chips, shape in _2D.items()},
    **{f"v5litepod-{chips}": f"v5e:{shape}" for chips, shape in _2D.items()},
}


def topology_name(name: str) -> str:
    """'v5e-8' or 'v5e:2x4' -> 'v5e:2x4'; refuses names it does not know, listing them."""
    if name in SLICES:
        return SLICES[name]
    generation, _, shape = name.partition(":")
    if generation in GENERATION_KIND and shape and all(d.isdigit() for d in shape.split("x")):
        return name
    raise TopologyError(
        f"Unknown TPU slice or topology {name!r}. Known slices: "
        f"{', '.join(SLICES)}; or a jax topology such as v5e:2x4, v4:2x2x1, "
        "v3:4x4."
    )


def target_devices(name: str, megacore: bool = True) -> list:
    """The JAX devices of a TPU slice, compiled for without a TPU (libtpu)."""
    topology = topology_name(name)
    try:
        import libtpu  # noqa: F401  (XLA's TPU compiler)
    except ImportError:
        raise TopologyError(
            f"Planning for {name} compiles with XLA's TPU compiler, which "
            "comes with libtpu: pip install 'jaxprompt[tpu]'."
        ) from None
    # A deviceless compile touches no chip: several may run at once (libtpu otherwise
    # holds one lock file per machine).
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    from jax.experimental import topologies

    generation, shape = topology.split(":")
    try:
        if megacore and CHIPS[GENERATION_KIND[generation]].megacore:
            x, y, *_ = (int(d) for d in shape.split("x"))
            return list(
                topologies.get_topology_desc(
                    platform="tpu",
                    topology_name=topology,
                    chip_config_name="megacore",
                    chips_per_host_bounds=(min(x, 2), min(y, 2), 1),
                    num_slices=1,
                    wrap=(False, False, False),
                ).devices
            )
        return list(topologies.get_topology_desc(platform="tpu", topology_name=topology).devices)
    except Exception as e:  # libtpu raises several kinds; all mean the same to a user
        raise TopologyError(
            f"libtpu cannot build the topology {topology!r} ({name}): "
            f"{str(e).splitlines()[0][:200]}"
        ) from None


def chip_of(device) -> Chip | None:
    return CHIPS.get(device.device_kind)


def chips_per_device(device) -> float:
    """The share of a chip one JAX device is (1 for megacore and v5e, 1/2 for a v3 core)."""
    chip = chip_of(device)
    return 1.0 if chip is None else getattr(device, "num_cores", 1) / chip.cores


def device_peaks(device) -> tuple[float, float] | None:
    """(peak FLOP/s, HBM bytes/s) of one JAX device, or None without published figures."""
    chip = chip_of(device)
    share = chips_per_device(device)
    return None if chip is None else (chip.flops * share, chip.bandwidth * share)


def device_hbm_bytes(device) -> float | None:
    chip = chip_of(device)
    return None if chip is None else chip.hbm_bytes * chips_per_device(device)


__all__ = [
    "CHIPS",
    "SLICES",
    "TopologyError",
    "chips_per_device",
    "device_hbm_bytes",
    "device_peaks",
    "target_devices",
    "topology_name",
]
