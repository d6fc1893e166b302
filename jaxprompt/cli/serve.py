"""`jaxprompt serve`: one frozen model serving a bank of prompts over HTTP.

jaxprompt serve --prompt_bank bank/ --port 8000   # bank/sst2/: a prompt directory
curl -s localhost:8000/v1/predict -d '{"task": "sst2", "inputs": ["a great film"]}'
"""

from __future__ import annotations

import asyncio
import os

from jaxprompt.cli.common import CliError, add_prompt_use_flags, int_list


def _check_port_free(host: str, port: int) -> None:
    """Refuses a port another process listens on before the model is loaded and compiled
    (port 0: the system picks a free one)."""
    import socket

    if not port:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise CliError(f"--host {host}: {e.strerror}.") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as e:
            raise CliError(f"--port {port}: {host}:{port} is in use ({e.strerror}).") from None


def run(args) -> int:
    from jaxprompt import data
    from jaxprompt.checkpoints import load_pretrained, model_vocabulary
    from jaxprompt.partitioning import make_mesh
    from jaxprompt.prompts.bank_directory import read_bank_directory
    from jaxprompt.serving.running import serve as serve_until_stopped
    from jaxprompt.serving.server import PromptServer, ServeConfig

    from jaxprompt.serving.admin import ADMIN_TOKEN_ENV, check_exposure

    token = args.admin_token or os.environ.get(ADMIN_TOKEN_ENV) or None
    try:
        check_exposure(args.host, token, args.insecure_admin)
    except ValueError as e:
        raise CliError(str(e)) from None
    _check_port_free(args.host, args.port)
    try:
        entries = read_bank_directory(args.prompt_bank)
    except (FileNotFoundError, NotADirectoryError, ValueError) as e:
        raise CliError(f"--prompt_bank {args.prompt_bank}: {e}") from None
    named = sorted(
        {
            e.artifact.info.model.get("path")
            for e in entries.values()
            if e.artifact.info and e.artifact.info.model.get("path")
        }
    )
    if args.model is None and len(named) != 1:
        raise CliError(
            f"--model is required (the bank's prompt directories name {named or 'no model'})."
        )
    model = args.model or named[0]
    config, params = load_pretrained(model)
    vocab = data.vocabulary(model_vocabulary(model, args.vocabulary))
    data.check_vocabulary(vocab, config)
    longest = max(len(e.prompt) for e in entries.values())
    serve = ServeConfig(
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        max_request_inputs=args.max_request_inputs,
        request_timeout_s=args.request_timeout_s,
        inputs_length=args.inputs_length,
        targets_length=args.targets_length,
        max_prompt_length=args.max_prompt_length or longest,
        max_labels=args.max_labels,
        batch_buckets=int_list(args.batch_buckets, "--batch_buckets"),
        length_buckets=int_list(args.length_buckets, "--length_buckets"),
        policy=args.batching,
        admin_token=token,
        prompt_dirs=(args.prompt_bank, *(args.prompt_dir or ())),
        idle_timeout_s=args.idle_timeout_s,
        allow_other_model=args.allow_other_model,
        allow_other_vocabulary=args.allow_other_vocabulary,
    )
    from jaxprompt.prompts.trainable import check_prompt_use

    check_prompt_use(
        serve.max_prompt_length,
        serve.inputs_length,
        source="--max_prompt_length (the longest prompt)",
        config=config,
        targets_length=serve.targets_length,
    )
    mesh = make_mesh(int_list(args.mesh, "--mesh")) if args.mesh else None
    try:
        server = PromptServer(config, params, vocab, serve, mesh=mesh)
        for name, entry in entries.items():
            server.add_artifact(name, entry.artifact, entry.labels)
    except ValueError as e:  # PromptUseError and TaskError among them
        raise CliError(str(e)) from None
    seconds = server.start()
    print(
        f"jaxprompt serve: {len(entries)} tasks, compiled {len(server.runner.batch_buckets)} "
        f"batch x {len(server.runner.length_buckets)} length buckets in {seconds:.1f} s",
        flush=True,
    )

    def ready(port):
        print(f"jaxprompt serve: listening on http://{args.host}:{port}", flush=True)

    asyncio.run(serve_until_stopped(server, args.host, args.port, ready=ready))
    print("jaxprompt serve: drained and stopped", flush=True)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve a bank of prompts over HTTP (one frozen model)")
    p.add_argument(
        "--model",
        help="'tiny', a Hub id (org/name[@revision]), a Hugging Face T5 "
        "directory or a T5X checkpoint (default: the model the "
        "bank's prompt directories name)",
    )
    p.add_argument(
        "--prompt_bank",
        required=True,
        help="directory of prompt directories (<task>/, labels and placement their "
        "own) and/or <task>.<ext> files (labels from the optional bank.json)",
    )
    add_prompt_use_flags(p)
    p.add_argument(
        "--vocabulary",
        help="SentencePiece model (default: the model's own spiece.model, else T5's)",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="beyond loopback, PUT/DELETE need --admin_token (or --insecure_admin)",
    )
    p.add_argument(
        "--admin_token",
        help="token for PUT/DELETE /v1/prompts (Authorization: "
        "Bearer TOKEN); default $JAXPROMPT_ADMIN_TOKEN",
    )
    p.add_argument(
        "--insecure_admin",
        action="store_true",
        help="allow PUT/DELETE without a token on a non-loopback host",
    )
    p.add_argument(
        "--prompt_dir",
        action="append",
        help='another directory a {"path": ...} PUT may read (repeatable; the bank '
        "directory always may)",
    )
    p.add_argument(
        "--idle_timeout_s",
        type=float,
        default=15.0,
        help="close connections idle (or sending headers) for this long",
    )
    p.add_argument("--port", type=int, default=8000, help="0: any free port")
    p.add_argument("--max_batch", type=int, default=32, help="examples per batch")
    p.add_argument(
        "--max_wait_ms", type=float, default=5.0, help="longest wait for a batch to fill"
    )
    p.add_argument(
        "--batching",
        choices=["mixed", "per_task", "single"],
        default="mixed",
        help="mixed: tasks share batches; per_task: one task per batch; single: no batching",
    )
    p.add_argument(
        "--max_queue", type=int, default=1024, help="queued examples before requests get 503"
    )
    p.add_argument("--max_request_inputs", type=int, default=256)
    p.add_argument("--request_timeout_s", type=float, default=30.0)
    p.add_argument(
        "--inputs_length",
        type=int,
        default=128,
        help="token limit of an input (EOS included); longer ones are refused",
    )
    p.add_argument("--targets_length", type=int, default=16)
    p.add_argument(
        "--max_prompt_length",
        type=int,
        help="longest prompt the server takes (default: the bank's longest)",
    )
    p.add_argument("--max_labels", type=int, default=8, help="labels per task at most")
    p.add_argument("--batch_buckets", help="compiled batch sizes, e.g. 1,4,16,32")
    p.add_argument("--length_buckets", help="compiled input lengths, e.g. 32,64,128")
    p.add_argument("--mesh", help="data,model mesh shape to shard the frozen model, e.g. 1,4")
    p.set_defaults(func=run)
