"""Writes a randomly initialised T5 of a preset as a Hugging Face directory (for benchmarks).

    python tools/make_random_checkpoint.py --preset t5_1_1_base --out /tmp/t5_1_1_base_random

Weights are drawn with numpy (normal, fan-in scaled; layer-norm scales 1). A 248M-parameter
model needs ~1 GB of disk and about as much RAM while writing.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

import _common  # noqa: F401  (puts the repository on sys.path)

from jaxprompt.checkpoints.hf import CONFIG_FILE, SAFETENSORS_FILE, hf_parameter_map  # noqa: E402
from jaxprompt.checkpoints.safetensors_io import write_safetensors  # noqa: E402
from jaxprompt.config import T5Config  # noqa: E402
from jaxprompt.models.t5 import param_shapes  # noqa: E402
from flax import traverse_util  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="t5_1_1_base")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()

    config = T5Config.preset(args.preset)
    shapes = traverse_util.flatten_dict(param_shapes(config))
    rng = np.random.default_rng(args.seed)
    dtype = np.float32 if args.dtype == "float32" else __import__("ml_dtypes").bfloat16

    def tensors():
        for entry in hf_parameter_map(config):
            shape = shapes[entry.flax_path].shape
            if entry.flax_path[-1] == "scale":
                array = np.ones(shape, np.float32)
            else:
                array = rng.standard_normal(shape, dtype=np.float32) * shape[0] ** -0.5
            array = array.astype(dtype)
            yield entry.hf_name, (array.T if entry.transpose else array)

    os.makedirs(args.out, exist_ok=True)
    write_safetensors(
        os.path.join(args.out, SAFETENSORS_FILE), tensors(), metadata={"format": "pt"}
    )
    with open(os.path.join(args.out, CONFIG_FILE), "w") as f:
        json.dump(config.to_hf_config(), f, indent=2, sort_keys=True)
    count = sum(int(np.prod(s.shape)) for s in shapes.values())
    print(f"wrote {args.preset} ({count:,} parameters, {args.dtype}) to {args.out}")


if __name__ == "__main__":
    main()
