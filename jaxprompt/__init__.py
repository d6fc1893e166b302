"""jaxprompt: soft prompt tuning of a frozen T5 in JAX/Flax (Lester et al., 2021).

The names below are imported on first use (PEP 562), so `import jaxprompt` stays cheap and
the `jaxprompt` command can set up its process (jaxprompt.host_memory) before JAX loads.
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Type checkers and IDEs see the real names.
    from jaxprompt.checkpoints import CheckpointError, load_pretrained, save_hf_checkpoint
    from jaxprompt.config import ConfigError, T5Config
    from jaxprompt.models.t5 import T5
    from jaxprompt.prompts.artifact import PromptArtifact, PromptInfo, read_prompt
    from jaxprompt.prompts.files import PromptFileError, load_prompt
    from jaxprompt.prompts.trainable import make_trainable
    from jaxprompt.training.loop import TrainerConfig, train

__version__ = "0.1.0"

_HOMES = {
    "CheckpointError": "jaxprompt.checkpoints",
    "load_pretrained": "jaxprompt.checkpoints",
    "save_hf_checkpoint": "jaxprompt.checkpoints",
    "ConfigError": "jaxprompt.config",
    "T5Config": "jaxprompt.config",
    "T5": "jaxprompt.models.t5",
    "PromptFileError": "jaxprompt.prompts.files",
    "load_prompt": "jaxprompt.prompts.files",
    "PromptArtifact": "jaxprompt.prompts.artifact",
    "PromptInfo": "jaxprompt.prompts.artifact",
    "read_prompt": "jaxprompt.prompts.artifact",
    "make_trainable": "jaxprompt.prompts.trainable",
    "TrainerConfig": "jaxprompt.training.loop",
    "train": "jaxprompt.training.loop",
}

__all__ = sorted(_HOMES) + ["__version__"]


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'jaxprompt' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # Later lookups skip this function.
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
