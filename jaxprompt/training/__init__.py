"""Prompt training: the pure sharded step (`step`), the resumable loop with checkpoints and
validation (`loop`), masked optimizers (`optimizers`), metrics logs and learning curves
(`metrics_log`). Token losses live in jaxprompt.models.losses."""
