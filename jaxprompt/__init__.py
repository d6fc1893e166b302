"""jaxprompt: soft prompt tuning of a frozen T5 in JAX/Flax (Lester et al., 2021)."""

from jaxprompt.checkpoints import CheckpointError, load_pretrained, save_hf_checkpoint
from jaxprompt.config import ConfigError, T5Config
from jaxprompt.models.t5 import T5

__version__ = "0.1.0"

__all__ = ["CheckpointError", "ConfigError", "T5", "T5Config", "load_pretrained",
           "save_hf_checkpoint", "__version__"]
