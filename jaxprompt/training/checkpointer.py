"""Orbax checkpoints of the trainable state only (prompt, optimizer state, step, rng).

Layout of an output directory:
  model_info.json            the frozen model (path, architecture, fingerprint), prompt shape
  checkpoints/<step>/        latest checkpoint(s): state + meta (data position, best metric)
  checkpoints/<step>/prompt.npy
  checkpoints/<step>/deep_prompt.npz   (runs with a deep prompt)
  checkpoints/<step>/jaxprompt.json, adapter_config.json, adapter_model.safetensors
                             a self-describing prompt directory (jaxprompt.prompts.artifact)
  best/<step>/               the checkpoint with the best validation metric, the same files
The frozen weights are never written: a checkpoint is a few hundred KB to a few MB.

A save commits the orbax state (atomically: orbax writes a temporary directory and renames
it), then writes the prompt files from it, jaxprompt.json last (atomically). A step whose
state is committed but whose files are missing or torn (a kill between the two) is found
on resume and its files rebuilt from the state (`repair`). `JAXPROMPT_CRASH_AT=N` (tests)
ends the process at the N-th point of this sequence: `_crash_point`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable

import orbax.checkpoint as ocp

from jaxprompt.checkpoints.errors import CheckpointError
from jaxprompt.prompts.artifact import INFO_FILE, PromptInfo, write_prompt_directory
from jaxprompt.prompts.trainable import DEEP_PROMPT_FILE, PROMPT_FILE, save_trainable
from jaxprompt.distributed import fetch, is_leader

MODEL_INFO_FILE = "model_info.json"
_crash_points = [0]


def _crash_point() -> None:
    """Fault injection for tests: with JAXPROMPT_CRASH_AT=N the process ends (os._exit(99),
    as a kill would: no cleanup) at the N-th crash point of this process's saves."""
    target = os.environ.get("JAXPROMPT_CRASH_AT")
    if not target:
        return
    _crash_points[0] += 1
    if _crash_points[0] == int(target):
        os._exit(99)


def check_or_write_model_info(output_dir: str, info: dict[str, Any]) -> None:
    """Writes model_info.json, or refuses if the directory holds another model's run.

    `info` must hold "architecture", "fingerprint" and "prompt_shape"; those must equal
    what an existing file says (the model path may differ: the same weights can move).
    """
    path = os.path.join(output_dir, MODEL_INFO_FILE)
    if os.path.exists(path):
        with open(path) as f:
            existing = json.load(f)
        mismatches = [
            f"{key}: checkpoint has {existing.get(key)!r}, this run has {info.get(key)!r}"
            for key in (
                "architecture",
                "fingerprint",
                "prompt_shape",
                "prompt_mode",
                "deep_prompt_shapes",
                "prompt_encoder",
            )
            if existing.get(key) != info.get(key)
        ]
        if mismatches:
            raise CheckpointError(
                f"{output_dir} holds a run of a different model or prompt "
                f"({path}):\n  - "
                + "\n  - ".join(mismatches)
                + "\nNothing was overwritten. Use another --output_dir, or the model and "
                "prompt length this run was started with."
            )
        changed = execution_changes(existing.get("execution"), info.get("execution"))
        if not changed:
            return
        print(
            f"Resuming {output_dir} with other execution settings: {changed} (the "
            "architecture, weights and prompt are the same)."
        )
        info = dict(existing, execution=info["execution"])
    if not is_leader():
        return
    os.makedirs(output_dir, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(info, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def execution_changes(before: dict | None, after: dict | None) -> str:
    """'remat_policy 'none' -> 'full', ...' for the execution settings that differ."""
    if before is None or after is None:
        return ""
    return ", ".join(
        f"{k} {before.get(k)!r} -> {after.get(k)!r}"
        for k in sorted(after)
        if before.get(k) != after.get(k)
    )


class PromptCheckpointer:
    """Latest and best checkpoints of a TrainState-like pytree plus a JSON `meta` dict."""

    def __init__(
        self,
        output_dir: str,
        keep_latest: int = 1,
        info: PromptInfo | None = None,
        metric: str = "loss",
        fold: Callable[[dict], dict] = lambda tree: tree,
    ):
        """`info`: what every saved prompt directory records (step and, for best/, the
        value of `metric` are added at each save); None: the arrays only. `fold`: the
        trainable tree as its prompt files hold it (a prompt encoder folded into the
        prompt, jaxprompt.prompts.reparam); the orbax state keeps the tree as trained."""
        self.output_dir = os.path.abspath(output_dir)
        self.info, self.metric, self.fold = info, metric, fold
        options = lambda keep: ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        self.latest = ocp.CheckpointManager(
            os.path.join(self.output_dir, "checkpoints"),
            options=options(keep_latest),
            item_names=("state", "meta"),
        )
        self.best = ocp.CheckpointManager(
            os.path.join(self.output_dir, "best"), options=options(1), item_names=("state", "meta")
        )

    def save(self, step: int, state, meta: dict, best: bool = False) -> None:
        """Saves to best (if `best`), then to latest; blocks until each is written, then
        writes its prompt files. Best first: a kill between the two leaves latest at the
        previous step, so the resumed run replays this step and its evaluation; latest
        first would record the step as done with its best save missing."""
        managers = ([self.best] if best else []) + [self.latest]
        for manager in managers:
            if manager.latest_step() == step:
                continue  # already saved (e.g. final step == last periodic save)
            _crash_point()
            manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
                ),
            )
            manager.wait_until_finished()
            _crash_point()
            self._write_files(manager, step, state, meta)

    def _write_files(self, manager, step: int, state, meta: dict) -> None:
        """The prompt files of a committed step, from its state (the last one written
        atomically: jaxprompt.json, or without `info` the trainable's files)."""
        trainable = self.fold(fetch(state.trainable))
        if not is_leader():
            return
        directory = os.path.join(manager.directory, str(step))
        if self.info is None:
            save_trainable(directory, trainable)
            return
        selected = (
            {"metric": self.metric, "value": meta.get("best_metric")}
            if manager is self.best
            else None
        )
        write_prompt_directory(
            directory,
            trainable,
            dataclasses.replace(self.info, step=step, selected_on=selected),
            after_each_file=_crash_point,
        )

    def _complete(self, directory: str, trainable: dict) -> bool:
        if self.info is not None:
            return os.path.exists(os.path.join(directory, INFO_FILE))
        names = [PROMPT_FILE] * ("prompt" in trainable) + [DEEP_PROMPT_FILE] * (
            "deep_prompt" in trainable
        )
        return all(os.path.exists(os.path.join(directory, n)) for n in names)

    def repair(self, abstract_state) -> list[str]:
        """Rebuilds the prompt files of every committed step (latest and best) that lacks
        them, from its orbax state: what a kill between the commit and the files leaves.
        Returns the directories rebuilt."""
        rebuilt = []
        for manager in (self.latest, self.best):
            for step in manager.all_steps():
                directory = os.path.join(manager.directory, str(step))
                if self._complete(directory, abstract_state.trainable):
                    continue
                state, meta = self.restore(abstract_state, step, from_best=manager is self.best)
                self._write_files(manager, step, state, meta)
                rebuilt.append(directory)
        return rebuilt

    def latest_step(self) -> int | None:
        return self.latest.latest_step()

    def restore(self, abstract_state, step: int | None = None, from_best: bool = False):
        """Returns (state, meta) of `step` (default: the newest) of latest or best."""
        manager = self.best if from_best else self.latest
        step = manager.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"No checkpoint in {manager.directory}.")
        try:
            restored = manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()
                ),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(
                f"{manager.directory}/{step}: cannot restore the prompt state "
                f"into this run's structure: {e}"
            ) from e
        return restored["state"], restored["meta"]

    def best_prompt_path(self, name: str = PROMPT_FILE) -> str | None:
        """The best checkpoint's prompt.npy (or `name`, e.g. deep_prompt.npz), if written."""
        step = self.best.latest_step()
        path = None if step is None else os.path.join(self.best.directory, str(step), name)
        return path if path is not None and os.path.exists(path) else None

    def close(self) -> None:
        self.latest.close()
        self.best.close()
