"""`jaxprompt serve`: one frozen T5, a bank of prompts, HTTP/JSON (aiohttp).

Endpoints:
  POST   /v1/predict          {"task": "sst2", "inputs": ["...", ...]}
                              -> {"task", "method", "predictions": [...], "scores": [...]}
  GET    /v1/tasks            the bank: names, prompt shapes, labels, how each is decoded
  PUT    /v1/prompts/{task}   add or replace a prompt without a restart: a JSON body
                              {"path": "<prompt file or directory on the server>", "labels":
                              [...] | null} (a prompt directory's own labels and placement
                              when "labels" is left out), or a file's bytes
                              (`?format=npy|safetensors|torch&labels=a&labels=b`)
  DELETE /v1/prompts/{task}
  GET    /healthz, /metrics   liveness; Prometheus text

Bad requests get a 4xx and a one-line reason naming the field. Inputs longer than
`inputs_length` tokens are refused (413 would suggest a body limit; it is 400 with the
token count), never silently truncated. A full queue answers 503 with Retry-After; a
request not answered within `request_timeout_s` gets 504. SIGTERM: new requests get 503,
requests in flight finish, then the process exits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import time

import numpy as np
from aiohttp import web

from jaxprompt.checkpoints.errors import CheckpointError
from jaxprompt.config import T5Config
from jaxprompt.data.vocabulary import EOS_ID
from jaxprompt.data.vocabulary import longest_piece, vocabulary_fingerprint
from jaxprompt.checkpoints.fingerprints import content_fingerprint
from jaxprompt.prompts.artifact import check_use
from jaxprompt.prompts.files import PromptFileError, UnreadablePromptFile
from jaxprompt.serving.admin import authorized
from jaxprompt.serving.requests import OWN_LABELS, RequestError, json_object, put_source
from jaxprompt.serving.batcher import Batcher, Pending, QueueFull
from jaxprompt.serving.metrics import ServerMetrics
from jaxprompt.serving.registry import TaskError, TaskRegistry
from jaxprompt.serving.runner import Example, ModelRunner, default_buckets

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 1024  # examples
    max_request_inputs: int = 256
    request_timeout_s: float = 30.0
    inputs_length: int = 128
    targets_length: int = 16
    max_prompt_length: int = 100
    max_labels: int = 8
    batch_buckets: tuple[int, ...] | None = None  # default: 1, 4, 16, ..., max_batch
    length_buckets: tuple[int, ...] | None = None  # default: 32, 64, ..., inputs_length
    policy: str = "mixed"
    shutdown_timeout_s: float = 30.0
    max_body_bytes: int = 64 << 20
    admin_token: str | None = None  # PUT/DELETE need `Authorization: Bearer <token>`
    prompt_dirs: tuple[str, ...] = ()  # where a {"path": ...} PUT may read prompt files
    idle_timeout_s: float = 15.0  # idle connections and unfinished headers are closed
    allow_other_model: bool = False  # serve prompts trained on another model's fingerprint
    allow_other_vocabulary: bool = False  # ... or with another vocabulary


class PromptServer:
    """The server's state: registry, model runner, batcher, metrics; and its handlers."""

    def __init__(
        self, config: T5Config, params: dict, vocab, serve: ServeConfig = ServeConfig(), mesh=None
    ):
        self.serve, self.vocab = serve, vocab
        self.registry = TaskRegistry(
            config,
            vocab,
            max_prompt_length=serve.max_prompt_length,
            max_labels=serve.max_labels,
            targets_length=serve.targets_length,
        )
        self.runner = ModelRunner(
            config,
            params,
            vocab,
            batch_buckets=serve.batch_buckets or default_buckets(serve.max_batch, 1, 4),
            length_buckets=serve.length_buckets or default_buckets(serve.inputs_length, 32, 2),
            targets_length=serve.targets_length,
            mesh=mesh,
        )
        if self.runner.max_length != serve.inputs_length:
            raise ValueError(
                f"the largest length bucket ({self.runner.max_length}) must equal "
                f"inputs_length ({serve.inputs_length})."
            )
        self.metrics = ServerMetrics()
        self.batcher = Batcher(
            self.runner,
            self.registry.snapshot,
            max_batch=serve.max_batch,
            max_wait_s=serve.max_wait_ms / 1000,
            max_queue=serve.max_queue,
            policy=serve.policy,
            on_batch=self.metrics.on_batch,
        )
        self.warm_shapes: set[tuple] = set()  # ("rank", C, S) / ("greedy",) compiled
        self.draining = False
        self.inflight = 0
        # No piece is longer than this, so a longer text holds more tokens than inputs_length.
        self.max_input_chars = serve.inputs_length * longest_piece(vocab)
        self._changes = asyncio.Lock()

    @functools.cached_property
    def model_fingerprint(self) -> str:
        """The frozen model's content fingerprint (what a recorded prompt must be of),
        computed when the first such prompt arrives."""
        return content_fingerprint(self.runner.params)

    # -- the bank --------------------------------------------------------------------
    def add_task(
        self, name: str, prompt: np.ndarray, labels, source: str, prompt_mode: str = "prefix"
    ) -> bool:
        """Validates a task, compiles its method if new, checks a trial run, then serves it."""
        task = self.registry.make_task(name, prompt, labels, source, prompt_mode)
        trial = self.registry.preview(task)
        self._warm(trial, task.method)
        result = self.runner.run(trial, [Example(name, np.ones((1,), np.int32))])[0]
        if result.scores is not None and not all(np.isfinite(list(result.scores.values()))):
            raise TaskError(
                f"{source}: the frozen model gives non-finite scores with this "
                "prompt; it is refused."
            )
        replaced = self.registry.put(task)
        self.metrics.tasks.set(len(self.registry.snapshot().bank.names))
        return replaced

    def _warm(self, snapshot, method: str) -> float:
        """Compiles `method` at the snapshot's shapes unless done before; returns seconds."""
        key = (method,) + (snapshot.bank.candidates.shape[1:] if method == "rank" else ())
        if key in self.warm_shapes:
            return 0.0
        self.warm_shapes.add(key)
        return self.runner.warm_up(snapshot, (method,))

    def add_artifact(self, name: str, artifact, labels, source: str | None = None) -> bool:
        """A prompt as read (a PromptArtifact): refused if trained on another model."""
        source = source or artifact.source
        if artifact.prompt is None:
            raise TaskError(f"{source}: a deep prompt alone cannot be served.")
        if artifact.info is not None:
            check_use(
                artifact,
                model_fingerprint=self.model_fingerprint,
                vocabulary_fingerprint=vocabulary_fingerprint(self.vocab),
                vocabulary=getattr(self.vocab, "path", "the vocabulary"),
                allow_other_model=self.serve.allow_other_model,
                allow_other_vocabulary=self.serve.allow_other_vocabulary,
            )
        return self.add_task(name, artifact.prompt, labels, source, artifact.prompt_mode)

    def load_bank_directory(self, directory: str) -> None:
        """Serves every task of a bank directory (jaxprompt.prompts.bank_directory)."""
        from jaxprompt.prompts.bank_directory import read_bank_directory

        for name, entry in read_bank_directory(directory).items():
            self.add_artifact(name, entry.artifact, entry.labels)

    def start(self) -> float:
        """Compiles the bank's shapes (rank classification always), starts the worker;
        returns the seconds spent compiling since the server was made."""
        snapshot = self.registry.snapshot()
        for method in {"rank"} | {t.method for t in snapshot.tasks.values()}:
            self._warm(snapshot, method)
        self.batcher.start()
        return self.runner.compile_seconds

    # -- handlers --------------------------------------------------------------------
    async def predict(self, request: web.Request) -> web.Response:
        start = time.perf_counter()
        if self.draining:
            raise RequestError(503, "the server is shutting down", {"Retry-After": "1"})
        body = await json_object(request)
        task, inputs = body.get("task"), body.get("inputs")
        if not isinstance(task, str):
            raise RequestError(400, "field 'task': a string naming a task of GET /v1/tasks")
        snapshot = self.registry.snapshot()
        if task not in snapshot.tasks:
            raise RequestError(
                404,
                f"field 'task': {task!r} is not in the bank "
                f"({', '.join(snapshot.bank.names) or 'empty'})",
            )
        if not isinstance(inputs, list) or not inputs:
            raise RequestError(400, "field 'inputs': a non-empty list of strings")
        limit = min(self.serve.max_request_inputs, self.serve.max_queue)
        if len(inputs) > limit:
            raise RequestError(
                400,
                f"field 'inputs': {len(inputs)} inputs; at most {limit} "
                "per request (--max_request_inputs, --max_queue)",
            )
        examples = []
        for i, text in enumerate(inputs):
            if not isinstance(text, str):
                raise RequestError(400, f"field 'inputs[{i}]': a string, not {type(text).__name__}")
            if len(text) > self.max_input_chars:  # surely over the limit: not tokenized
                raise RequestError(
                    400,
                    f"field 'inputs[{i}]': {len(text)} characters, over "
                    f"the {self.serve.inputs_length}-token limit whatever "
                    "the tokenization; longer inputs are refused",
                )
            ids = self.vocab.encode(text) + [EOS_ID]
            if len(ids) > self.serve.inputs_length:
                raise RequestError(
                    400,
                    f"field 'inputs[{i}]': {len(ids)} tokens (with EOS), "
                    f"over the limit of {self.serve.inputs_length}; "
                    "longer inputs are refused, not truncated",
                )
            examples.append(Example(task, np.asarray(ids, np.int32)))
        results = await self._run(examples)
        failed = [r.error for r in results if r.error]
        if failed:
            raise RequestError(500 if failed[0].startswith("internal") else 409, failed[0])
        self.metrics.examples.labels(task).inc(len(examples))
        self.metrics.latency.observe(time.perf_counter() - start)
        answer = {
            "task": task,
            "method": snapshot.tasks[task].method,
            "predictions": [r.prediction for r in results],
        }
        if results[0].scores is not None:
            answer["scores"] = [r.scores for r in results]
        return web.json_response(answer)

    async def _run(self, examples: list[Example]):
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def finish(results):
            if not future.done():
                future.set_result(results)

        pending = Pending(examples, lambda results: loop.call_soon_threadsafe(finish, results))
        try:
            self.batcher.submit(pending)
        except QueueFull as e:
            raise RequestError(503, f"busy: {e}; retry", {"Retry-After": "1"}) from None
        self.metrics.queue_depth.set(self.batcher.depth())
        self.inflight += 1
        try:
            return await asyncio.wait_for(future, self.serve.request_timeout_s)
        except asyncio.TimeoutError:
            pending.cancelled = True
            raise RequestError(
                504, f"not answered within {self.serve.request_timeout_s} s (--request_timeout_s)"
            ) from None
        finally:
            self.inflight -= 1
            self.metrics.queue_depth.set(self.batcher.depth())

    async def tasks(self, request: web.Request) -> web.Response:
        snapshot = self.registry.snapshot()
        return web.json_response(
            {
                "tasks": [snapshot.tasks[name].describe() for name in snapshot.bank.names],
                "limits": {
                    "inputs_length": self.serve.inputs_length,
                    "max_prompt_length": self.serve.max_prompt_length,
                    "max_labels": self.serve.max_labels,
                    "max_request_inputs": self.serve.max_request_inputs,
                    "d_model": self.registry.config.d_model,
                },
            }
        )

    def _require_admin(self, request: web.Request) -> None:
        if not authorized(request.headers.get("Authorization"), self.serve.admin_token):
            raise RequestError(
                401,
                "PUT and DELETE /v1/prompts need the admin token: Authorization: Bearer <token>",
                {"WWW-Authenticate": "Bearer"},
            )

    async def put_prompt(self, request: web.Request) -> web.Response:
        self._require_admin(request)
        name = request.match_info["task"]
        path, source, cleanup, read, labels = await put_source(
            request, name, self.serve.prompt_dirs
        )
        async with self._changes:
            try:
                try:
                    artifact = await asyncio.to_thread(read, path)
                except (UnreadablePromptFile, CheckpointError, OSError) as e:
                    # A parser's message can quote the file (header keys): the client gets none.
                    logger.info("PUT %s: cannot read %s: %s", name, source, e)
                    raise RequestError(
                        400,
                        f"{'body' if cleanup else 'field path'}: not a "
                        "prompt file jaxprompt can read (corrupt, or "
                        "another format)",
                    ) from None
                if labels is OWN_LABELS:
                    labels = artifact.info.labels if artifact.info else None
                replaced = await asyncio.to_thread(
                    self.add_artifact, name, artifact, labels, source
                )
            except (PromptFileError, TaskError) as e:  # checks of a parsed array: ours
                message = str(e).replace(cleanup, "uploaded file") if cleanup else str(e)
                raise RequestError(400, message) from None
            finally:
                if cleanup:
                    os.unlink(cleanup)
        task = self.registry.snapshot().tasks[name]
        return web.json_response(
            {"replaced": replaced, **task.describe()}, status=200 if replaced else 201
        )

    async def delete_prompt(self, request: web.Request) -> web.Response:
        self._require_admin(request)
        name = request.match_info["task"]
        async with self._changes:
            try:
                self.registry.delete(name)
            except KeyError:
                raise RequestError(404, f"task {name!r} is not in the bank") from None
        self.metrics.tasks.set(len(self.registry.snapshot().bank.names))
        return web.json_response({"deleted": name})

    async def healthz(self, request: web.Request) -> web.Response:
        if self.draining:
            return web.json_response({"status": "draining"}, status=503)
        return web.json_response(
            {
                "status": "ok",
                "tasks": len(self.registry.snapshot().bank.names),
                "queue": self.batcher.depth(),
            }
        )

    async def prometheus(self, request: web.Request) -> web.Response:
        self.metrics.queue_depth.set(self.batcher.depth())
        body, content_type = self.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.serve.max_body_bytes, middlewares=[self._errors])
        app.add_routes(
            [
                web.post("/v1/predict", self.predict),
                web.get("/v1/tasks", self.tasks),
                web.put("/v1/prompts/{task}", self.put_prompt),
                web.delete("/v1/prompts/{task}", self.delete_prompt),
                web.get("/healthz", self.healthz),
                web.get("/metrics", self.prometheus),
            ]
        )
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler):
        """Every failure is a JSON {"error": reason}; the status is counted per endpoint."""
        resource = request.match_info.route.resource
        endpoint = resource.canonical if resource is not None else "unmatched"
        try:
            response = await handler(request)
        except RequestError as e:
            response = web.json_response({"error": e.reason}, status=e.status, headers=e.headers)
        except web.HTTPException as e:  # aiohttp's own: 404 route, 405, 413 body too large
            response = web.json_response({"error": e.text or e.reason}, status=e.status)
        except Exception as e:  # never take the server down
            logger.exception("%s %s failed", request.method, request.path)
            response = web.json_response(
                {"error": f"internal error: {type(e).__name__}"}, status=500
            )
        self.metrics.requests.labels(endpoint, str(response.status)).inc()
        return response


__all__ = ["PromptServer", "ServeConfig"]
