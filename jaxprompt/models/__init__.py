"""Flax models: T5 and the prompt-combination functions."""

from jaxprompt.models.combine import PROMPT_MODES, combine_prompt
from jaxprompt.models.t5 import T5, init_params, param_axes, param_shapes

__all__ = ["PROMPT_MODES", "T5", "combine_prompt", "init_params", "param_axes", "param_shapes"]
