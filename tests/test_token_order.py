"""The reordering that runs a checkpoint with padding 0 and EOS 1 (jaxprompt.token_order),
against hand-worked permutations."""

from __future__ import annotations

import numpy as np
import pytest

from jaxprompt.decoder_config import DecoderConfig
from jaxprompt.token_order import pipeline_moves, rows_back, rows_here, to_checkpoint, to_here


@pytest.mark.parametrize(
    "eos, pad, rows, moves",
    [
        (1, 0, 10, ()),  # T5's and Gemma's ids: nothing moves
        (1, None, 10, ((0, 9), (9, 0))),  # no padding token: the last row takes 0
        (9, 9, 10, ((0, 8), (1, 9), (8, 0), (9, 1))),  # padding = EOS: not a padding
        (2, 1, 10, ((0, 2), (1, 0), (2, 1))),  # a 3-cycle
        (0, 1, 10, ((0, 1), (1, 0))),  # swapped
        (0, None, 10, ((0, 1), (1, 9), (9, 0))),
        (7, 5, 10, ((0, 5), (1, 7), (5, 0), (7, 1))),  # Llama 3 / Qwen: two swaps
    ],
)
def test_moves_put_eos_at_1_and_padding_at_0(eos, pad, rows, moves):
    assert pipeline_moves(eos, pad, rows) == moves
    ids = list(range(rows))
    here = to_here(ids, moves)
    padding = pad if pad not in (None, eos) else (8 if eos == 9 else 9)
    assert here[eos] == 1 and here[padding] == 0
    assert sorted(here) == ids and to_checkpoint(here, moves) == ids
    table = np.arange(rows * 2).reshape(rows, 2)  # row i holds checkpoint token i
    reordered = rows_here(table, moves)
    np.testing.assert_array_equal(reordered[here], table)  # token i's row at its id here
    np.testing.assert_array_equal(rows_back(reordered, moves), table)
    np.testing.assert_array_equal(rows_here(table.T, moves, axis=1), reordered.T)


def test_a_config_json_with_llama3_ids_is_run_reordered_and_written_back():
    hf = {
        "model_type": "llama",
        "vocab_size": 100,
        "hidden_size": 8,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 16,
        "bos_token_id": 97,
        "eos_token_id": [98, 0],
    }
    config = DecoderConfig.from_hf_config(hf)
    assert (config.bos_id, config.eos_id, config.pad_id) == (97, 1, 0)
    assert config.token_moves == ((0, 99), (1, 98), (98, 1), (99, 0))
    written = config.to_hf_config()
    assert (written["bos_token_id"], written["eos_token_id"]) == (97, 98)
    assert written["pad_token_id"] == 99  # the row it runs as padding
    assert DecoderConfig.from_hf_config(written) == config
    recorded = config.architecture()
    assert recorded["token_moves"] == [[0, 99], [1, 98], [98, 1], [99, 0]]
    assert DecoderConfig(**recorded) == config
    assert "token_moves" not in config.replace(token_moves=()).architecture()
    with pytest.raises(Exception, match="not a permutation"):
        config.replace(token_moves=((0, 5),))
