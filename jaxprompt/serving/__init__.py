"""Serving many tasks from one frozen model: `jaxprompt serve` (HTTP, dynamic batching).

registry.py  the served prompts: validated tasks, immutable snapshots swapped on change
runner.py    the frozen model at fixed, pre-compiled (batch, length) shape buckets
batcher.py   the queue and the worker thread that turns it into mixed-task batches
metrics.py   Prometheus metrics
server.py    the aiohttp application, its handlers, graceful shutdown
"""
