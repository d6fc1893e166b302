"""jaxprompt: soft prompt tuning of a frozen T5 in JAX/Flax (Lester et al., 2021)."""

from jaxprompt.checkpoints import CheckpointError, load_pretrained, save_hf_checkpoint
from jaxprompt.config import ConfigError, T5Config
from jaxprompt.models.t5 import T5
from jaxprompt.prompts.files import PromptFileError, load_prompt
from jaxprompt.prompts.trainable import make_trainable
from jaxprompt.training.loop import TrainerConfig, train

__version__ = "0.1.0"

__all__ = ["CheckpointError", "ConfigError", "PromptFileError", "T5", "T5Config", "TrainerConfig",
           "load_prompt", "load_pretrained", "make_trainable", "save_hf_checkpoint", "train",
           "__version__"]
