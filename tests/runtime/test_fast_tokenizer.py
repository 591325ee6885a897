"""The T5 / Gemma tokenizers of the flow pipelines (edge_sched.pipelines.fast_tokenizer, `tokenizers` only):
ids and attention masks equal to transformers' T5TokenizerFast / GemmaTokenizerFast, on long, empty,
non-ASCII and special-token prompts, both padding sides, truncated and not."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_sched.pipelines.fast_tokenizer import FastTokenizer
from tests.export.tiny_flow import gemma_tokenizer, t5_tokenizer

PROMPTS = [
    "a photo of a cat",
    "The Dog, and the CAT!",
    "",
    "x" * 200,
    "naïve café ünïcödé ñandú 日本語の猫 😀 Ωmega",
    "  many   spaces\tand\nnewlines  ",
    "the " * 300,
    "<extra_id_0> sky</s>red<bos> <pad>",
    "e\u0301 fi ﬁ ① ｆｕｌｌ",  # combining accent, ligature, circled digit, full-width: NFKC
]
CALLS = [
    dict(padding="max_length", max_length=77, truncation=True),
    dict(padding="max_length", max_length=256, truncation=True),
    dict(padding="longest", truncation=False),
    dict(padding="max_length", max_length=8, truncation=True),
]


@pytest.fixture(scope="module", params=["t5", "gemma"])
def pair(request, tmp_path_factory):
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp(request.param)
    (t5_tokenizer if request.param == "t5" else gemma_tokenizer)().save_pretrained(folder)
    return request.param, folder, AutoTokenizer.from_pretrained(folder), FastTokenizer.from_folder(folder)


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("call", CALLS, ids=lambda c: f"{c['padding']}-{c.get('max_length')}")
def test_ids_equal_transformers(pair, call, side):
    _, _, ref, ours = pair
    ref.padding_side = ours.padding_side = side
    expected = ref(PROMPTS, return_tensors="np", **call)
    got = ours(PROMPTS, **call)
    np.testing.assert_array_equal(got.input_ids, expected.input_ids)
    np.testing.assert_array_equal(got.attention_mask, expected.attention_mask)
    assert got.input_ids.dtype == np.int64


def test_single_prompts_defaults_and_decode(pair):
    kind, _, ref, ours = pair
    assert ours.padding_side == ref.padding_side  # Gemma pads on the left by default, T5 on the right
    assert ours.model_max_length == ref.model_max_length
    for prompt in PROMPTS:
        assert ours.encode(prompt) == ref(prompt).input_ids
        assert ours.decode(ours.encode(prompt), skip_special_tokens=True) == ref.decode(ref(prompt).input_ids,
                                                                                       skip_special_tokens=True)


def test_gemma_post_processor_follows_the_config_flags(tmp_path):
    """transformers rebuilds Gemma's [bos] $A [eos] template from add_bos_token / add_eos_token."""
    from transformers import AutoTokenizer

    gemma_tokenizer().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    config.update(add_eos_token=True, add_bos_token=False)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    ref, ours = AutoTokenizer.from_pretrained(tmp_path), FastTokenizer.from_folder(tmp_path)
    expected = ref(PROMPTS[:3], padding="longest", return_tensors="np").input_ids
    np.testing.assert_array_equal(ours(PROMPTS[:3], padding="longest").input_ids, expected)
    assert expected[0, -1] != ref.bos_token_id


def test_missing_tokenizer_json_is_a_clear_error(tmp_path):
    (tmp_path / "spiece.model").write_bytes(b"\0")
    with pytest.raises(FileNotFoundError, match="no tokenizer.json.*edge-sched export"):
        FastTokenizer.from_folder(tmp_path)


def test_bad_calls_are_clear_errors(pair):
    _, _, _, ours = pair
    with pytest.raises(ValueError, match="padding"):
        ours(["a"], padding="sideways")
    with pytest.raises(ValueError, match="max_length"):
        ours(["a"], max_length=0)
    with pytest.raises(TypeError, match="str"):
        ours([3])
    with pytest.raises(ValueError, match="different lengths"):
        ours(["a", "a photo of a cat"], padding=False, truncation=False)
