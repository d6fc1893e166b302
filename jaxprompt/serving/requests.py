"""Reading requests: the one-line 4xx error, JSON bodies, and where a PUT's prompt comes
from (a path the admin surface allows, or an uploaded file's bytes)."""

from __future__ import annotations

import os
import tempfile

from aiohttp import web

from jaxprompt.prompts.artifact import PromptArtifact, read_prompt
from jaxprompt.prompts.files import load_prompt
from jaxprompt.serving.admin import confined

UPLOAD_SUFFIX = {"npy": ".npy", "safetensors": ".safetensors", "torch": ".pt"}
OWN_LABELS = object()  # a {"path": ...} PUT without "labels": the prompt directory's own


class RequestError(Exception):
    def __init__(self, status: int, reason: str, headers: dict | None = None):
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers or {}


async def json_object(request: web.Request) -> dict:
    try:
        body = await request.json()
    except ValueError as e:
        raise RequestError(400, f"body: not JSON ({e})") from None
    except RecursionError:
        raise RequestError(400, "body: JSON nested too deeply") from None
    if not isinstance(body, dict):
        raise RequestError(400, f"body: a JSON object, not {type(body).__name__}")
    return body


def bare_prompt(path: str) -> PromptArtifact:
    """An uploaded file: its array only (the temporary folder describes nothing)."""
    return PromptArtifact(path, {"prompt": load_prompt(path)}, None)


async def put_source(request: web.Request, name: str, prompt_dirs):
    """(path, source, temporary file or None, reader, labels) of PUT /v1/prompts/{name}."""
    if request.content_type == "application/json":
        body = await json_object(request)
        path, labels = body.get("path"), body.get("labels", OWN_LABELS)
        if not isinstance(path, str):
            raise RequestError(
                400,
                "field 'path': a prompt file or directory on the "
                "server (or send the file's bytes with ?format=)",
            )
        real = confined(path, prompt_dirs)
        if real is None or not os.path.exists(real):  # one answer: nothing to probe
            raise RequestError(
                403,
                "field 'path': not a prompt inside the bank directory "
                "or a --prompt_dir of this server",
            )
        return real, real, None, read_prompt, labels
    fmt = request.query.get("format")
    if fmt not in UPLOAD_SUFFIX:
        raise RequestError(
            400,
            f"query 'format': one of {sorted(UPLOAD_SUFFIX)} for an "
            "uploaded prompt file (a directory: send its path)",
        )
    data = await request.read()
    if not data:
        raise RequestError(400, "body: empty; send the prompt file's bytes")
    labels = request.query.getall("labels", None)
    handle = tempfile.NamedTemporaryFile(suffix=UPLOAD_SUFFIX[fmt], delete=False)
    with handle:
        handle.write(data)
    return handle.name, f"uploaded {fmt} prompt for {name!r}", handle.name, bare_prompt, labels
