"""One process of a 2-process CPU "multi-host" run (python -m tests.multihost_worker ...).

  python -m tests.multihost_worker PROCESS_ID NUM_PROCESSES PORT OUTPUT_DIR
Each process has 4 CPU devices (XLA_FLAGS set by the parent) and feeds only its own rows of
every global batch of 8. The mesh is (data 2, model 4): one process per data row, the deep
prompt split over each process's 4 devices.
"""

from __future__ import annotations

import sys

import jax
import numpy as np


def main(
    process_id: int, num_processes: int, port: int, output_dir: str, family: str = "t5"
) -> None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    from jaxprompt.distributed import maybe_initialize

    maybe_initialize(
        True,
        coordinator_address=f"localhost:{port}",
        num_processes=num_processes,
        process_id=process_id,
    )
    assert jax.process_count() == num_processes and jax.device_count() == 4 * num_processes

    from tests.train_helpers import synthetic_batches
    from tests.multihost_reference import run

    def local_rows(position):
        rows = 8 // num_processes
        for batch in synthetic_batches(position):
            yield {k: v[process_id * rows : (process_id + 1) * rows] for k, v in batch.items()}

    result = run(output_dir, local_rows, mesh_shape=(2, 4), family=family)
    from jaxprompt.prompts.deep import save_deep_prompt
    from jaxprompt.distributed import fetch

    trainable = fetch(result.state.trainable)
    np.save(f"{output_dir}/prompt_process_{process_id}.npy", trainable["prompt"])
    if "deep_prompt" in trainable:
        path = f"{output_dir}/deep_prompt_process_{process_id}.npz"
        save_deep_prompt(path, trainable["deep_prompt"])


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:])
