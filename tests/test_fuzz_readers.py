"""Every file reader, fed random and mutated bytes (hypothesis): the only exceptions that come
out are jaxprompt's own error types, with a message naming the file; no pickle is executed;
the file read is left as it was.

JAXPROMPT_FUZZ_EXAMPLES sets the examples per reader and kind (default 40; the figures in
the README come from a run with 1000).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from jaxprompt.checkpoints import load_pretrained  # noqa: E402
from jaxprompt.checkpoints.errors import CheckpointError  # noqa: E402
from jaxprompt.config import ConfigError, T5Config  # noqa: E402
from jaxprompt.data.readers import DataError  # noqa: E402
from jaxprompt.data.user_files import read_records  # noqa: E402
from jaxprompt.prompts.deep import DeepPromptError, load_deep_prompt  # noqa: E402
from jaxprompt.prompts.files import PromptFileError, load_prompt  # noqa: E402
from tests.conftest import SHARED  # noqa: E402
from tests.helpers import PickleExploit, tiny_config  # noqa: E402

EXAMPLES = int(os.environ.get("JAXPROMPT_FUZZ_EXAMPLES", "40"))
OURS = (CheckpointError, ConfigError, DataError, DeepPromptError, PromptFileError)
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
TINY = tiny_config(
    vocab_size=64,
    d_model=8,
    d_kv=4,
    d_ff=16,
    num_layers=1,
    num_decoder_layers=1,
    tie_word_embeddings=True,
)


def mutations(valid: bytes):
    """Random bytes, or `valid` truncated and with bytes overwritten."""
    flips = st.lists(
        st.tuples(st.integers(0, max(len(valid) - 1, 0)), st.integers(0, 255)), max_size=8
    )
    mutated = st.tuples(st.integers(0, len(valid)), flips).map(lambda args: _mutate(valid, *args))
    return st.one_of(st.binary(max_size=2 * len(valid) + 16), mutated)


def _mutate(valid: bytes, keep: int, flips) -> bytes:
    data = bytearray(valid[:keep] if keep < len(valid) and flips == [] else valid)
    for position, value in flips:
        if position < len(data):
            data[position] = value
    if flips and keep < len(data):
        data = data[:keep]
    return bytes(data)


def check_read(read, path: str) -> None:
    """`read(path)` returns, or raises one of jaxprompt's errors naming the file; the bytes
    at `path` stay as they were."""
    before = _snapshot(path)
    try:
        read(path)
    except OURS as e:
        assert os.path.basename(path.rstrip("/")) in str(e), f"error does not name the file: {e}"
    assert _snapshot(path) == before, f"{path} was modified by a reader"


def _snapshot(path: str) -> dict:
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return {path: f.read()}
    out = {}
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                out[os.path.join(root, name)] = f.read()
    return out


def _write(path: str, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return path


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
    """One valid file of each kind, written by the real libraries."""
    from safetensors.numpy import save_file

    root = tmp_path_factory.mktemp("valid")
    prompt = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    files = {}
    np.save(root / "prompt.npy", prompt)
    files["npy"] = (root / "prompt.npy").read_bytes()
    save_file({"prompt": prompt}, str(root / "prompt.safetensors"))
    files["safetensors"] = (root / "prompt.safetensors").read_bytes()
    save_file({"prompt_embeddings": prompt}, str(root / "adapter_model.safetensors"))
    files["peft_weights"] = (root / "adapter_model.safetensors").read_bytes()
    np.savez(
        root / "deep_prompt.npz",
        encoder_key=np.zeros((1, 2, 8), np.float32),
        encoder_value=np.zeros((1, 2, 8), np.float32),
    )
    files["npz"] = (root / "deep_prompt.npz").read_bytes()
    files["config"] = json.dumps(TINY.to_hf_config()).encode()
    files["tsv"] = b"sentence\tlabel\na fine film .\t1\na dull one .\t0\n"
    files["csv"] = b'text,label\n"a fine, warm film",1\ndull,0\n'
    files["jsonl"] = b'{"text": "a fine film", "label": 1}\n{"text": "dull", "label": 0}\n'
    return files


def test_the_fuzzed_files_start_valid(tmp_path, valid_files):
    """Unmutated, every seed file reads: the fuzzing starts from real inputs."""
    for kind in ("npy", "safetensors"):
        path = _write(str(tmp_path / f"prompt.{kind}"), valid_files[kind])
        assert load_prompt(path, d_model=8).shape == (3, 8)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps(
            {"peft_type": "PROMPT_TUNING", "task_type": "SEQ_2_SEQ_LM", "num_virtual_tokens": 3}
        )
    )
    (adapter / "adapter_model.safetensors").write_bytes(valid_files["peft_weights"])
    assert load_prompt(str(adapter), d_model=8).shape == (3, 8)
    assert set(load_deep_prompt(_write(str(tmp_path / "d.npz"), valid_files["npz"]), TINY)) == {
        "encoder_key",
        "encoder_value",
    }
    assert (
        T5Config.from_hf_config(_write(str(tmp_path / "config.json"), valid_files["config"]))
        == TINY
    )
    for kind in ("tsv", "csv", "jsonl"):
        assert len(read_records(_write(str(tmp_path / f"t.{kind}"), valid_files[kind]))) == 2


@FUZZ
@given(data=st.data())
def test_fuzz_prompt_npy_and_safetensors(tmp_path_factory, valid_files, data):
    directory = tmp_path_factory.mktemp("prompt")
    for kind in ("npy", "safetensors"):
        path = _write(str(directory / f"prompt.{kind}"), data.draw(mutations(valid_files[kind])))
        check_read(lambda p: load_prompt(p, d_model=8), path)


@FUZZ
@given(data=st.data())
def test_fuzz_peft_adapter_and_torch_files(tmp_path_factory, valid_files, data):
    """A PEFT prompt-tuning adapter directory with one file mutated; a mutated .pt prompt."""
    pytest.importorskip("torch")
    import torch

    directory = tmp_path_factory.mktemp("peft")
    adapter = directory / "adapter"
    adapter.mkdir()
    config = {
        "peft_type": "PROMPT_TUNING",
        "task_type": "SEQ_2_SEQ_LM",
        "num_virtual_tokens": 3,
        "num_transformer_submodules": 1,
        "token_dim": 8,
    }
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    (adapter / "adapter_model.safetensors").write_bytes(valid_files["peft_weights"])
    name = data.draw(st.sampled_from(["adapter_config.json", "adapter_model.safetensors"]))
    _write(str(adapter / name), data.draw(mutations((adapter / name).read_bytes())))
    check_read(lambda p: load_prompt(p, d_model=8), str(adapter))
    torch.save({"prompt": torch.zeros(3, 8)}, directory / "valid.pt")
    path = _write(
        str(directory / "prompt.pt"), data.draw(mutations((directory / "valid.pt").read_bytes()))
    )
    check_read(lambda p: load_prompt(p, d_model=8), path)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 1 << 40)
    | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@FUZZ
@given(data=st.data())
def test_fuzz_prompt_directory_metadata(tmp_path_factory, valid_files, data):
    """A prompt directory (prompt.npy + jaxprompt.json) whose jaxprompt.json is mutated as
    bytes, or has fields replaced by arbitrary JSON values."""
    from jaxprompt.prompts.artifact import INFO_FILE, PromptInfo, read_prompt

    directory = tmp_path_factory.mktemp("prompt_dir") / "described"
    directory.mkdir()
    _write(str(directory / "prompt.npy"), valid_files["npy"])
    info = PromptInfo(
        model={"path": "m", "architecture": None, "fingerprint": "ab"},
        vocabulary={"path": "v", "fingerprint": "cd"},
        labels=["no", "yes"],
        decoding="rank",
        lengths={"inputs": 16, "targets": 4},
        step=3,
        trainable={"prompt": [3, 8]},
    ).to_json()
    valid = json.dumps(info).encode()
    if data.draw(st.booleans()):
        content = data.draw(mutations(valid))
    else:
        fields = data.draw(st.lists(st.sampled_from(sorted(info)), max_size=4))
        content = json.dumps({**info, **{f: data.draw(JSON_VALUES) for f in fields}}).encode()
    _write(str(directory / INFO_FILE), content)
    check_read(read_prompt, str(directory))


@FUZZ
@given(data=st.data())
def test_fuzz_deep_prompt_npz(tmp_path_factory, valid_files, data):
    path = _write(
        str(tmp_path_factory.mktemp("deep") / "deep_prompt.npz"),
        data.draw(mutations(valid_files["npz"])),
    )
    check_read(lambda p: load_deep_prompt(p, TINY), path)


@FUZZ
@given(data=st.data())
def test_fuzz_task_files(tmp_path_factory, valid_files, data):
    directory = tmp_path_factory.mktemp("task")
    for kind in ("tsv", "csv", "jsonl"):
        path = _write(str(directory / f"train.{kind}"), data.draw(mutations(valid_files[kind])))
        check_read(read_records, path)


@FUZZ
@given(data=st.data())
def test_fuzz_config_json(tmp_path_factory, valid_files, data):
    path = _write(
        str(tmp_path_factory.mktemp("config") / "config.json"),
        data.draw(mutations(valid_files["config"])),
    )
    check_read(T5Config.from_hf_config, path)


@pytest.fixture(scope="module")
def hf_checkpoint(tmp_path_factory):
    from jaxprompt.checkpoints.hf import save_hf_checkpoint
    from jaxprompt.models.t5 import init_params
    import jax

    directory = tmp_path_factory.mktemp("hf")
    save_hf_checkpoint(str(directory), TINY, init_params(TINY, jax.random.key(0)))
    return directory


@FUZZ
@given(data=st.data())
def test_fuzz_hf_checkpoint(tmp_path_factory, hf_checkpoint, data):
    directory = tmp_path_factory.mktemp("hf_fuzz")
    shutil.copytree(hf_checkpoint, directory, dirs_exist_ok=True)
    name = data.draw(st.sampled_from(["model.safetensors", "config.json"]))
    valid = (hf_checkpoint / name).read_bytes()
    _write(str(directory / name), data.draw(mutations(valid)))
    before = _snapshot(str(directory))
    try:
        load_pretrained(str(directory))
    except OURS as e:
        assert str(directory) in str(e) or name in str(e), e
    assert _snapshot(str(directory)) == before


@FUZZ
@given(data=st.data())
def test_fuzz_t5x_checkpoint(tmp_path_factory, data):
    """Mutated msgpack of a T5X checkpoint directory (arrays in tensorstore beside it) and of
    a single-file T5X checkpoint (every array inline)."""
    fixtures = SHARED / "fixtures" / "t5x_checkpoint"
    if not fixtures.exists():
        pytest.skip(f"{fixtures} not found: needs ../shared")
    directory = tmp_path_factory.mktemp("t5x")
    if data.draw(st.booleans()):
        target = directory / "checkpoint_3"
        shutil.copytree(fixtures / "prompt_tuning_test_t5_1_1_tiny" / "checkpoint_3", target)
        msgpack_file = target / "checkpoint"
    else:
        target = msgpack_file = directory / "test_t5_tiny.checkpoint_0"
        shutil.copyfile(fixtures / "t5x_test_t5_tiny" / "test_t5_tiny.checkpoint_0", target)
    valid = msgpack_file.read_bytes()
    _write(str(msgpack_file), data.draw(mutations(valid)))
    before = _snapshot(str(target))
    try:
        load_pretrained(str(target))
    except OURS as e:
        assert target.name in str(e), e
    assert _snapshot(str(target)) == before


def test_no_pickle_is_ever_executed(tmp_path):
    """A .pt prompt or a pytorch_model.bin carrying a pickle that would run code is refused,
    and the code does not run."""
    pytest.importorskip("torch")
    marker = tmp_path / "pwned"

    payload = pickle.dumps({"prompt_embeddings": PickleExploit(str(marker))})
    prompt_file = _write(str(tmp_path / "prompt.pt"), payload)
    with pytest.raises(PromptFileError, match="prompt.pt"):
        load_prompt(prompt_file)
    checkpoint = tmp_path / "hf"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps(TINY.to_hf_config()))
    _write(str(checkpoint / "pytorch_model.bin"), payload)
    with pytest.raises(CheckpointError, match="pytorch_model.bin"):
        load_pretrained(str(checkpoint))
    assert not marker.exists()
