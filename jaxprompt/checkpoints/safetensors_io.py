"""safetensors reading through the `safetensors` library; writing by hand, streamed.

Reading: `safe_open` parses and validates the header and reads one tensor (or one slice,
for sharded loading) at a time. Its numpy backend cannot return bfloat16 (measured with
safetensors 0.8.0: `TypeError: data type 'bfloat16' not understood`), so bfloat16 tensors
come through its flax backend, placed on the CPU, then to numpy (ml_dtypes.bfloat16).
`python tools/bench_load.py` on a random t5_1_1_base (247.6M params, float32, 944 MiB):
see the README's Measured table for load time and peak RSS.

Writing stays hand-written: the library's `save_file` takes every tensor at once (a full
copy of the model in memory) and its numpy backend cannot write bfloat16; ours streams one
tensor at a time into `path.tmp` and renames it. The format: an 8-byte little-endian header
length, a JSON header {name: {dtype, shape, data_offsets}}, then the raw bytes.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Iterable, Mapping

import ml_dtypes
import numpy as np

from jaxprompt.checkpoints.errors import CheckpointError

_DTYPES = {
    "F64": np.dtype(np.float64), "F32": np.dtype(np.float32), "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16), "I64": np.dtype(np.int64), "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16), "I8": np.dtype(np.int8), "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
}
_NAMES = {dtype: name for name, dtype in _DTYPES.items()}


class SafetensorsFile:
    """One .safetensors file: names, shapes, and `get(name)` / `get_slice(name, index)`."""

    def __init__(self, path: str | os.PathLike):
        from safetensors import SafetensorError, safe_open

        self.path = os.fspath(path)
        self._error = SafetensorError
        try:
            self._numpy = safe_open(self.path, framework="np")
        except (SafetensorError, OSError) as e:
            raise CheckpointError(_diagnose(self.path, e)) from None
        self._names = list(self._numpy.keys())
        self._info = {}
        for name in self._names:
            view = self._numpy.get_slice(name)
            self._info[name] = (view.get_dtype(), tuple(view.get_shape()))
            if self._info[name][0] not in _DTYPES:
                raise CheckpointError(f"{self.path}: tensor {name!r} has unsupported dtype "
                                      f"{self._info[name][0]!r}.")
        self.metadata = self._numpy.metadata() or {}
        self._flax = None

    def keys(self) -> list[str]:
        return list(self._names)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._info[name][1]

    def get(self, name: str) -> np.ndarray:
        """The whole tensor as a numpy array."""
        return self.get_slice(name, ())

    def get_slice(self, name: str, index=()) -> np.ndarray:
        """tensor[index] (a tuple of slices), read without the rest of the tensor."""
        index = tuple(index) or (slice(None),)
        try:
            if self._info[name][0] != "BF16":
                return np.asarray(self._numpy.get_slice(name)[index])
            import jax
            from safetensors import safe_open
            with jax.default_device(jax.devices("cpu")[0]):
                if self._flax is None:
                    self._flax = safe_open(self.path, framework="flax")
                return np.asarray(self._flax.get_slice(name)[index])
        except (self._error, OSError) as e:
            raise CheckpointError(f"{self.path}: cannot read tensor {name!r} ({e}).") from None


def _diagnose(path: str, error: Exception) -> str:
    """A message naming what is wrong with a file safe_open refused (and the tensor that
    runs past the end of a truncated file, when the header still parses)."""
    size = os.path.getsize(path) if os.path.exists(path) else 0
    if size < 8:
        return f"{path}: truncated safetensors file ({size} bytes, no header)."
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(min(length, size - 8)))
        data_size = size - 8 - length
        for name, info in header.items():
            if name != "__metadata__" and info["data_offsets"][1] > data_size:
                return (f"{path}: tensor {name!r} {tuple(info['shape'])} needs bytes "
                        f"{info['data_offsets']} but the file holds {max(data_size, 0)} data "
                        "bytes: the file is truncated or corrupt; download or save it again.")
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, struct.error,
            RecursionError):
        pass
    return f"{path}: not a readable safetensors file ({error})."


def write_safetensors(path: str | os.PathLike, tensors: Mapping[str, np.ndarray] | Iterable,
                      metadata: Mapping[str, str] | None = None) -> None:
    """Writes tensors (a dict, or (name, array) pairs) to `path`.

    Arrays are written little-endian and C-contiguous, copying at most one tensor at a
    time (transposed views and memory maps stay lazy until their turn). The file is first written to
    `path + ".tmp"` and renamed, so an interrupted write never leaves a half file.
    """
    items = list(tensors.items()) if isinstance(tensors, Mapping) else list(tensors)
    header: dict = {}
    offset = 0
    items = [(name, _little_endian(np.asarray(array))) for name, array in items]
    for name, array in items:
        dtype = array.dtype
        if dtype not in _NAMES:
            raise CheckpointError(f"Cannot write {name!r} of dtype {array.dtype} to safetensors.")
        nbytes = array.size * dtype.itemsize
        header[name] = {"dtype": _NAMES[dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # Align the data to 8 bytes.
    tmp = os.fspath(path) + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for _, array in items:
            f.write(np.ascontiguousarray(array).reshape(-1).view(np.uint8).data)
    os.replace(tmp, path)


def _little_endian(array: np.ndarray) -> np.ndarray:
    if array.dtype.byteorder == ">":
        return array.astype(array.dtype.newbyteorder("<"))
    return array
