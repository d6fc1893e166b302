"""A prompt directory that says how it is used: PEFT's adapter files plus jaxprompt.json.

Every prompt directory jaxprompt writes (a run's best/<step>/ and checkpoints/<step>/,
`jaxprompt export --format peft`) holds:
  adapter_config.json, adapter_model.safetensors  PEFT PROMPT_TUNING (the input prompt;
      only for the "prefix" placement, the one PEFT has)
  prompt.npy, deep_prompt.npz                      jaxprompt's arrays (training directories)
  jaxprompt.json                                   `PromptInfo`: the frozen model (path,
      architecture, content fingerprint), the vocabulary's fingerprint, the placement, the
      task (name and how to build it), labels, decoding, lengths, step and selection metric.
`read_prompt(path)` reads any prompt (such a directory, a run's output directory, a bare
file, a PEFT adapter, a T5X checkpoint) into one `PromptArtifact` that eval, predict,
serve, inspect and export take; a bare file has `info=None` and today's flags apply.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np

from jaxprompt.models.combine import PROMPT_MODES
from jaxprompt.prompts.files import PromptFileError, load_prompt
from jaxprompt.prompts.recorded import check_labels, model_path_beside

INFO_FILE = "jaxprompt.json"
INFO_VERSION = 1
DECODING = ("rank", "greedy")


class PromptUseError(PromptFileError):
    """A prompt used with a model or vocabulary other than its own (names both, and the
    flag that goes on anyway)."""


@dataclasses.dataclass(frozen=True)
class PromptInfo:
    """How a prompt is used (jaxprompt.json); every field but `model` may be unknown."""

    model: dict  # {"path", "architecture", "fingerprint"} (content_fingerprint)
    vocabulary: dict | None = None  # {"path", "fingerprint"}
    prompt_mode: str = "prefix"  # where the prompt goes: jaxprompt.models.combine.PROMPT_MODES
    task: dict | None = None  # {"name", "recipe"}: TextTask.recipe, to build the task again
    labels: list[str] | None = None  # rank-classification candidates (the verbalizer's words)
    decoding: str | None = None  # "rank" or "greedy"
    lengths: dict | None = None  # {"inputs", "targets"}: token lengths it was trained at
    step: int | None = None  # the training step of these values
    selected_on: dict | None = None  # {"metric", "value"}: the validation metric of best/
    trainable: dict | None = None  # shapes: {"prompt": [P, H], "deep_prompt": {name: shape}}
    method: str = "prompt_tuning"  # "prompt_tuning", "deep_prompt", "prompt_and_deep_prompt"
    version: int = INFO_VERSION

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, value: Any, path: str) -> "PromptInfo":
        """Checks every field's type; a bad file is refused naming the field."""
        if not isinstance(value, dict):
            raise PromptFileError(
                f"{path}: jaxprompt.json holds a {type(value).__name__}, not an object."
            )
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in value.items() if k in known}
        for name, kind, optional in _FIELD_TYPES:
            _check_type(fields, name, kind, optional, path)
        model = fields.get("model")
        if model is None:
            raise PromptFileError(
                f"{path}: field 'model' must be an object naming the frozen "
                "model (path, architecture, fingerprint)."
            )
        for parent, names in (
            ("model", ("path", "fingerprint")),
            ("vocabulary", ("path", "fingerprint")),
            ("task", ("name",)),
        ):
            for name in names:
                _check_type(fields.get(parent) or {}, name, str, True, f"{path}: {parent}")
        _check_type(model, "architecture", dict, True, f"{path}: model")
        fields["model"] = {**model, "path": model_path_beside(model.get("path"), path)}
        _check_recipe((fields.get("task") or {}).get("recipe"), path)
        if fields.get("version", INFO_VERSION) > INFO_VERSION:
            raise PromptFileError(
                f"{path}: written by a newer jaxprompt (version "
                f"{fields['version']} > {INFO_VERSION}); upgrade jaxprompt."
            )
        if fields.get("prompt_mode", "prefix") not in PROMPT_MODES:
            raise PromptFileError(
                f"{path}: prompt_mode {fields['prompt_mode']!r} is not one of {PROMPT_MODES}."
            )
        if fields.get("decoding") not in (None, *DECODING):
            raise PromptFileError(
                f"{path}: decoding {fields['decoding']!r} is not one of {DECODING}."
            )
        check_labels(fields.get("labels"), path)
        lengths = fields.get("lengths") or {}
        if any(
            k not in ("inputs", "targets") or not _is_int(v) or v < 1 for k, v in lengths.items()
        ):
            raise PromptFileError(
                f"{path}: lengths must be {{'inputs': int, 'targets': int}} "
                f"(positive); found {lengths}."
            )
        trainable = fields.get("trainable") or {}
        if set(trainable) - {"prompt", "deep_prompt"}:
            raise PromptFileError(
                f"{path}: trainable holds 'prompt' and/or 'deep_prompt'; found {sorted(trainable)}."
            )
        return cls(**fields)

    def describe(self) -> list[tuple[str, str]]:
        """(field, value) lines for `jaxprompt inspect`."""
        task = self.task or {}
        recipe = task.get("recipe") or {}
        how = (
            "built-in"
            if "builtin" in recipe
            else f"template {recipe['input_template']!r}"
            if "input_template" in recipe
            else "?"
        )
        selected = self.selected_on or {}
        return [
            ("model", f"{self.model.get('path')} (fingerprint {self.model.get('fingerprint')})"),
            (
                "vocabulary",
                "unknown"
                if not self.vocabulary
                else f"{self.vocabulary.get('path')} (fingerprint {self.vocabulary.get('fingerprint')})",
            ),
            ("placement", self.prompt_mode),
            ("task", f"{task.get('name')} ({how})" if task else "unknown"),
            ("labels", ", ".join(self.labels) if self.labels else "none (greedy decoding)"),
            ("decoding", str(self.decoding)),
            ("lengths", str(self.lengths)),
            ("method", self.method),
            ("step", str(self.step)),
            (
                "selected on",
                f"{selected.get('metric')} {selected.get('value')}"
                if selected
                else "not selected (a latest checkpoint)",
            ),
        ]


# (field, type, may be null) of jaxprompt.json's top level.
_FIELD_TYPES = (
    ("model", dict, False),
    ("vocabulary", dict, True),
    ("task", dict, True),
    ("lengths", dict, True),
    ("selected_on", dict, True),
    ("trainable", dict, True),
    ("labels", list, True),
    ("step", int, True),
    ("version", int, False),
    ("prompt_mode", str, False),
    ("decoding", str, True),
    ("method", str, False),
)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_type(fields: dict, name: str, kind: type, optional: bool, where: str) -> None:
    if name not in fields or (optional and fields[name] is None):
        return
    value = fields[name]
    if not (_is_int(value) if kind is int else isinstance(value, kind)):
        raise PromptFileError(
            f"{where}: field {name!r} must be a {kind.__name__}"
            f"{' or null' if optional else ''}; found {type(value).__name__}."
        )


def _check_recipe(recipe, path: str) -> None:
    """A task recipe: {"builtin": name} or from_files' arguments (see TextTask.recipe)."""
    if recipe is None:
        return
    where = f"{path}: task.recipe"
    if not isinstance(recipe, dict):
        raise PromptFileError(f"{where} must be an object; found {type(recipe).__name__}.")
    if "builtin" in recipe:
        _check_type(recipe, "builtin", str, False, where)
        return
    for name, kind, optional in (
        ("files", dict, False),
        ("input_template", str, False),
        ("target_field", str, False),
        ("verbalizer", dict, True),
        ("metrics", list, False),
    ):
        if name not in recipe:
            raise PromptFileError(f"{where}: no {name!r}.")
        _check_type(recipe, name, kind, optional, where)
    for mapping in (recipe["files"], recipe.get("verbalizer") or {}):
        if not all(isinstance(v, str) for v in mapping.values()):
            raise PromptFileError(f"{where}: files and verbalizer map names to strings.")
    if not all(isinstance(m, str) for m in recipe["metrics"]):
        raise PromptFileError(f"{where}: metrics must be a list of names.")


@dataclasses.dataclass(frozen=True)
class PromptArtifact:
    """A prompt as read: its trainable tree (numpy float32) and, if recorded, its info."""

    source: str  # the path the user gave
    trainable: dict  # {"prompt": [P, H]} and/or {"deep_prompt": {...}}
    info: PromptInfo | None  # None: a bare file (or a directory without jaxprompt.json)
    info_path: str | None = None

    @property
    def prompt(self) -> np.ndarray | None:
        return self.trainable.get("prompt")

    @property
    def prompt_mode(self) -> str:
        """The placement it was trained with ("prefix" when unrecorded, as before)."""
        return self.info.prompt_mode if self.info else "prefix"

    def missing(self) -> list[str]:
        """What a bare prompt does not record (for `jaxprompt inspect`)."""
        if self.info is None:
            return [
                "model",
                "vocabulary",
                "placement (assumed 'prefix')",
                "task",
                "labels",
                "decoding",
                "lengths",
                "step",
            ]
        names = {
            "vocabulary": self.info.vocabulary,
            "task": self.info.task,
            "labels": self.info.labels,
            "decoding": self.info.decoding,
            "lengths": self.info.lengths,
            "step": self.info.step,
        }
        return [name for name, value in names.items() if value is None]


def run_prompt_directory(path: str) -> str | None:
    """A `jaxprompt train` output directory's prompt: best/<newest>/, else checkpoints/<newest>/."""
    if not os.path.exists(os.path.join(path, "model_info.json")):
        return None
    for folder in ("best", "checkpoints"):
        root = os.path.join(path, folder)
        steps = sorted(
            (int(d) for d in os.listdir(root) if d.isdigit()) if os.path.isdir(root) else []
        )
        if steps:
            return os.path.join(root, str(steps[-1]))
    raise PromptFileError(
        f"{path}: a training directory without a checkpoint (expected "
        "best/<step>/ or checkpoints/<step>/)."
    )


def read_info(directory: str) -> PromptInfo | None:
    """The directory's jaxprompt.json, or None if it has none."""
    path = os.path.join(directory, INFO_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise PromptFileError(
            f"{path}: not valid JSON ({type(e).__name__}: {str(e)[:120]})."
        ) from None
    return PromptInfo.from_json(value, path)


def read_prompt(path: str | os.PathLike) -> PromptArtifact:
    """Any prompt (see the module docstring) -> PromptArtifact, checked as load_prompt checks."""
    from jaxprompt.prompts.deep import DEEP_PROMPT_FILE, load_deep_prompt
    from jaxprompt.prompts.trainable import PROMPT_FILE

    source = os.fspath(path)
    if not os.path.exists(source):
        raise PromptFileError(f"{source}: no such prompt file or directory.")
    if os.path.isdir(source):
        directory = run_prompt_directory(source) or source
    else:  # a file: its directory's jaxprompt.json (best/<step>/prompt.npy) describes it
        directory = os.path.dirname(source) or "."
    info = read_info(directory)
    if info is None:
        return PromptArtifact(source, {"prompt": load_prompt(source)}, None)
    trainable = {}
    shapes = info.trainable or {"prompt": None}
    if "prompt" in shapes:
        own = os.path.join(directory, PROMPT_FILE)
        trainable["prompt"] = load_prompt(own if os.path.exists(own) else directory)
    if "deep_prompt" in shapes:
        trainable["deep_prompt"] = load_deep_prompt(os.path.join(directory, DEEP_PROMPT_FILE))
    return PromptArtifact(source, trainable, info, os.path.join(directory, INFO_FILE))


def write_prompt_directory(
    directory: str, trainable: dict, info: PromptInfo, after_each_file=lambda: None
) -> None:
    """prompt.npy / deep_prompt.npz, the PEFT adapter and jaxprompt.json into `directory`
    (which exists); jaxprompt.json last, atomically: once it exists, the rest is whole. The
    PEFT files hold the input prompt, and only when its placement is "prefix": PEFT always
    prepends, so it would use any other prompt wrongly. `after_each_file`: a test hook."""
    from jaxprompt.models.family import config_from_architecture
    from jaxprompt.prompts.export import export_prompt
    from jaxprompt.prompts.trainable import save_trainable

    save_trainable(directory, trainable)
    after_each_file()
    if "prompt" in trainable and info.prompt_mode == "prefix":
        architecture = info.model.get("architecture")
        export_prompt(
            np.asarray(trainable["prompt"], np.float32),
            "peft",
            directory,
            config=config_from_architecture(architecture) if architecture else None,
            base_model=info.model.get("path"),
        )
        after_each_file()
    write_info(directory, info)


def write_info(directory: str, info: PromptInfo) -> str:
    path = os.path.join(directory, INFO_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(info.to_json(), f, indent=2)
    os.replace(tmp, path)
    return path


def check_use(
    artifact: PromptArtifact,
    *,
    model_fingerprint: str | None = None,
    vocabulary_fingerprint: str | None = None,
    model: str = "the model",
    vocabulary: str = "the vocabulary",
    allow_other_model: bool = False,
    allow_other_vocabulary: bool = False,
) -> None:
    """Refuses a recorded prompt used with another frozen model or vocabulary (one line each)."""
    info = artifact.info
    if info is None:
        return
    own = info.model.get("fingerprint")
    if model_fingerprint and own and own != model_fingerprint and not allow_other_model:
        raise PromptUseError(
            f"{artifact.source} was trained on the model {info.model.get('path')} (fingerprint "
            f"{own}), not {model} (fingerprint {model_fingerprint}); pass --allow_other_model "
            "to use it anyway (e.g. a re-saved copy of the same weights)."
        )
    own = (info.vocabulary or {}).get("fingerprint")
    if (
        vocabulary_fingerprint
        and own
        and own != vocabulary_fingerprint
        and not allow_other_vocabulary
    ):
        raise PromptUseError(
            f"{artifact.source} was trained with the vocabulary "
            f"{info.vocabulary.get('path')} (fingerprint {own}), not {vocabulary} "
            f"(fingerprint {vocabulary_fingerprint}); pass --vocabulary with the prompt's own, "
            "or --allow_other_vocabulary to go on."
        )


def task_record(task) -> dict:
    """What jaxprompt.json says of a TextTask: its name and how to build it again."""
    return {"name": task.name, "recipe": task.recipe}


__all__ = [
    "INFO_FILE",
    "PromptArtifact",
    "PromptInfo",
    "PromptUseError",
    "check_use",
    "read_info",
    "read_prompt",
    "run_prompt_directory",
    "task_record",
    "write_info",
    "write_prompt_directory",
]
