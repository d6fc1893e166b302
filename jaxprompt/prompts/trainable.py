"""The one trainable pytree: {"prompt": [P, H], "deep_prompt": {...}}, any non-empty subset,
plus {"prompt_encoder": {...}} beside a prompt (residual reparameterization,
jaxprompt.prompts.reparam; folded into the prompt whenever it leaves training).

It is made once (from `init_prompt` and/or `init_deep_prompt`, or read from files), then
passed as one argument through training, checkpoints, evaluation, prediction, ensembles,
the prompt bank and export; the frozen T5 params are always a separate pytree. Logical
axes: the prompt ("prompt", "embed") (replicated by the default rules: it is tiny), a deep
prompt ("layers", "prompt", "joined_kv"); the prompt encoder is replicated.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxprompt.config import T5Config
from jaxprompt.models.deep_prompt_spec import DeepPromptError, check_deep_prompt
from jaxprompt.models.deep_prompt_spec import deep_prompt_axes
from jaxprompt.prompts.deep import DEEP_PROMPT_FILE, load_deep_prompt, save_deep_prompt
from jaxprompt.prompts.files import load_prompt
from jaxprompt.prompts.init import PROMPT_AXES, PromptError

TRAINABLE_KEYS = ("prompt", "deep_prompt", "prompt_encoder")
PROMPT_FILE = "prompt.npy"


def make_trainable(
    prompt=None, deep_prompt: dict | None = None, prompt_encoder: dict | None = None
) -> dict:
    """The trainable tree, float32: {"prompt": [P, H]} and/or {"deep_prompt": {...}}, and
    a prompt's encoder {"prompt_encoder": {...}}."""
    trainable = {}
    if prompt is not None:
        trainable["prompt"] = jnp.asarray(prompt, jnp.float32)
    if deep_prompt is not None:
        trainable["deep_prompt"] = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), deep_prompt)
    if prompt_encoder is not None:
        trainable["prompt_encoder"] = jax.tree.map(
            lambda a: jnp.asarray(a, jnp.float32), prompt_encoder
        )
    return trainable


def as_trainable(value) -> dict:
    """None -> {} (the bare model); an array -> {"prompt": array}; a dict is checked."""
    if value is None:
        return {}
    if isinstance(value, dict):
        unknown = set(value) - set(TRAINABLE_KEYS)
        if unknown:
            raise PromptError(f"A trainable tree holds {TRAINABLE_KEYS}; got {sorted(value)}.")
        return value
    return {"prompt": value}


# T5's relative attention has no position table, but prompt + inputs beyond this were never
# trained or planned for: training, evaluation, prediction and serving refuse them alike.
MAX_ENCODER_LENGTH = 1024


def check_prompt_use(
    prompt_length: int,
    inputs_length: int,
    max_encoder_length: int = MAX_ENCODER_LENGTH,
    source: str = "the prompt",
    config=None,
    targets_length: int = 0,
) -> None:
    """The one check of a prompt's length in use: at least one row, and prompt + inputs
    within the encoder's length limit; with a decoder-only `config`, the whole sequence
    (prompt, BOS, inputs, targets) within the model's context. Raises PromptError naming
    the lengths and the fix."""
    if prompt_length < 1:
        raise PromptError(f"{source}: an empty prompt (0 rows).")
    if prompt_length + inputs_length > max_encoder_length:
        raise PromptError(
            f"{source}: prompt_length {prompt_length} + inputs_length "
            f"{inputs_length} exceeds max_encoder_length {max_encoder_length}; "
            "shorten the inputs (or the prompt)."
        )
    context = getattr(config, "max_length", None)  # DecoderConfig only
    if context is not None and prompt_length + 1 + inputs_length + targets_length > context:
        raise PromptError(
            f"{source}: prompt_length {prompt_length} + BOS + inputs_length {inputs_length} "
            f"+ targets_length {targets_length} exceeds the model's context of {context} "
            "tokens; shorten the inputs (or the prompt)."
        )


def check_trainable(trainable: dict, config: T5Config) -> None:
    """Raises PromptError naming the part whose shape does not fit `config`."""
    if not trainable:
        raise PromptError("Nothing to train: give a prompt, a deep prompt or both.")
    prompt = trainable.get("prompt")
    if prompt is not None and (np.ndim(prompt) != 2 or np.shape(prompt)[1] != config.d_model):
        raise PromptError(
            f"The prompt must be [P, {config.d_model}] for this model (d_model "
            f"{config.d_model}); got {tuple(np.shape(prompt))}."
        )
    if "prompt_encoder" in trainable and prompt is None:
        raise PromptError("A prompt_encoder reparameterizes a prompt; this tree has none.")
    if "deep_prompt" in trainable:
        try:
            check_deep_prompt(trainable["deep_prompt"], config)
        except DeepPromptError as e:
            raise PromptError(str(e)) from e


def trainable_axes(trainable: dict) -> dict:
    """PartitionSpecs of the trainable tree, leaf for leaf."""
    axes = {}
    if "prompt" in trainable:
        axes["prompt"] = jax.sharding.PartitionSpec(*PROMPT_AXES)
    if "deep_prompt" in trainable:
        axes["deep_prompt"] = deep_prompt_axes(trainable["deep_prompt"])
    if "prompt_encoder" in trainable:
        axes["prompt_encoder"] = jax.tree.map(
            lambda leaf: jax.sharding.PartitionSpec(*[None] * len(np.shape(leaf))),
            trainable["prompt_encoder"],
        )
    return axes


def shapes(trainable: dict) -> dict:
    """{"prompt": [P, H], "deep_prompt": {name: [L, P, K]}} as lists (for model_info.json)."""
    return jax.tree.map(lambda a: list(np.shape(a)), trainable)


def save_trainable(directory: str, trainable: dict) -> None:
    """Writes prompt.npy and/or deep_prompt.npz (float32) into `directory`, each file
    atomically (a temporary name, then renamed): a file that exists is whole."""
    if "prompt" in trainable:
        path = os.path.join(directory, PROMPT_FILE)
        with open(path + ".tmp", "wb") as f:
            np.save(f, np.asarray(trainable["prompt"], np.float32))
        os.replace(path + ".tmp", path)
    if "deep_prompt" in trainable:
        path = os.path.join(directory, DEEP_PROMPT_FILE)
        with open(path + ".tmp", "wb") as f:
            save_deep_prompt(f, trainable["deep_prompt"])
        os.replace(path + ".tmp", path)


def load_trainable(
    prompt_path: str | None = None,
    deep_prompt_path: str | None = None,
    config: T5Config | None = None,
) -> dict:
    """Reads a prompt (any format jaxprompt.prompts.files reads) and/or a deep_prompt.npz."""
    prompt = (
        None
        if prompt_path is None
        else load_prompt(prompt_path, None if config is None else config.d_model)
    )
    deep = None if deep_prompt_path is None else load_deep_prompt(deep_prompt_path, config)
    return make_trainable(prompt, deep)
