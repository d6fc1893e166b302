"""Which pip extra provides an optional dependency, for one-line errors when it is missing."""

from __future__ import annotations

EXTRA_OF_MODULE = {
    "seqio": "data",
    "tensorflow": "data",
    "tensorflow_text": "data",
    "sklearn": "data",
    "scipy": "data",
    "torch": "torch",
    "transformers": "torch",
    "peft": "torch",
    "libtpu": "tpu",
    "aiohttp": "serve",
    "prometheus_client": "serve",
}


def missing_extra_message(error: ModuleNotFoundError, what: str) -> str | None:
    """'<what> needs <module>: pip install 'jaxprompt[<extra>]'', or None if unknown."""
    module = (error.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    hint = " (install torch==2.13.0 first for its CPU build)" if extra == "torch" else ""
    return f"{what} needs {module}, which is not installed: pip install 'jaxprompt[{extra}]'{hint}"
