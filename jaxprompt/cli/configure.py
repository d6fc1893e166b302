"""gin at the edge: the flags of `jaxprompt train` and `jaxprompt plan` -> one `Run`.

Both commands parse the same `--gin_file` / `--gin.KEY=VALUE` flags through
`configured_run`, so the step that `jaxprompt plan` compiles is the step that
`jaxprompt train` runs. gin files are found by path, or relative to the `gin_configs/`
shipped inside the package (`jaxprompt.gin_configs`).
"""

from __future__ import annotations

import contextlib
import logging
import os

import gin

from jaxprompt.cli.common import CliError
from jaxprompt.config import T5Config
from jaxprompt.decoder_config import DecoderConfig
from jaxprompt.experiments.runs import Run, RunSettings
from jaxprompt.training.loop import TrainerConfig
from jaxprompt.training.optimizers import OptimizerConfig
from jaxprompt.training.step import StepConfig

_REGISTERED = False


def gin_config_dir() -> str:
    """The folder of jaxprompt's gin files: the package's data (any install)."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gin_configs")


def user_files_task(
    train: str | None = None,
    validation: str | None = None,
    test: str | None = None,
    input_template: str = "{text}",
    target_field: str = "label",
    verbalizer: dict | None = None,
    name: str = "user_task",
):
    """gin's `@from_files()`: jaxprompt.data.from_files, imported only when used."""
    from jaxprompt.data.user_files import from_files

    return from_files(
        train=train,
        validation=validation,
        test=test,
        input_template=input_template,
        target_field=target_field,
        verbalizer=verbalizer,
        name=name,
    )


def register_gin_configurables() -> None:
    """Makes jaxprompt's configuration classes bindable (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    for cls in (T5Config, DecoderConfig, OptimizerConfig, StepConfig, TrainerConfig):
        gin.external_configurable(cls, cls.__name__)
    gin.external_configurable(RunSettings, "train")
    gin.external_configurable(user_files_task, "from_files")
    gin.add_config_file_search_path(gin_config_dir())
    _REGISTERED = True


def resolve_gin_file(name: str) -> str:
    """A gin file by path, or relative to the package's gin_configs/."""
    if os.path.exists(name):
        return name
    shipped = os.path.join(gin_config_dir(), name)
    if os.path.exists(shipped):
        return shipped
    raise CliError(
        f"gin file {name!r} not found, neither as a path nor under "
        f"{gin_config_dir()} (e.g. runs/prompt_tuning.gin)."
    )


def _not_a_search_miss(record: logging.LogRecord) -> bool:
    """gin logs "Path not found: ..." at ERROR for each search-path miss before it finds a
    file in the next one; a file it cannot find at all is raised, so these lines go."""
    return not str(record.msg).startswith("Path not found")


@contextlib.contextmanager
def _quiet_gin_lookups():
    root = logging.getLogger()
    root.addFilter(_not_a_search_miss)
    try:
        yield
    finally:
        root.removeFilter(_not_a_search_miss)


def parse_gin(files: list[str], bindings: list[str]) -> None:
    """Parses gin files (paths, or relative to gin_configs/) and KEY=VALUE bindings."""
    register_gin_configurables()
    files = [resolve_gin_file(f) for f in files]
    try:
        with gin.unlock_config(), _quiet_gin_lookups():
            gin.clear_config()  # One CLI invocation, one configuration.
            gin.parse_config_files_and_bindings(files, bindings)
    except (ValueError, OSError, SyntaxError) as e:
        raise CliError(f"gin configuration: {e}") from e


def _configured(name: str):
    try:
        return gin.get_configurable(name)()
    except (TypeError, ValueError) as e:
        raise CliError(f"gin configuration: {name}: {e}") from e


def _short(selector: str) -> str:
    return selector.rsplit(".", 1)[-1]


def configured_run(files: list[str], bindings: list[str]) -> Run:
    """Parses the flags and builds the Run; refuses bindings that nothing reads."""
    parse_gin(files, bindings)
    t5, decoder = dict(gin.get_bindings("T5Config")), dict(gin.get_bindings("DecoderConfig"))
    if t5 and decoder:
        raise CliError(
            "gin configuration binds both T5Config.* and DecoderConfig.*: bind the class "
            "of the model the run loads (T5Config for T5, DecoderConfig for Gemma/Llama/Qwen)."
        )
    run = Run(
        settings=_configured("train"),
        optimizer=_configured("OptimizerConfig"),
        step=_configured("StepConfig"),
        trainer=_configured("TrainerConfig"),
        model_bindings=decoder or t5,
        model_bindings_class="DecoderConfig" if decoder else "T5Config",
    )
    read = {_short(selector) for _, selector in gin.config._OPERATIVE_CONFIG}
    read |= {"T5Config", "DecoderConfig"}
    unread = sorted(
        {
            f"{_short(selector)}.{param}"
            for (_, selector), params in gin.config._CONFIG.items()
            for param in params
            if _short(selector) not in read
        }
    )
    if unread:
        raise CliError(
            f"gin configuration: nothing reads {unread} (e.g. from_files.* without "
            "train.task = @from_files()); remove the binding(s)."
        )
    return run


__all__ = [
    "configured_run",
    "gin_config_dir",
    "parse_gin",
    "register_gin_configurables",
    "resolve_gin_file",
]
