"""Padding and truncation modes beyond diffusers' default call, both flavors, against transformers
(the fast flavor pads and truncates through the `tokenizers` library, the slow one on its own)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_sched.pipelines.tokenizer import CLIPTokenizer as OurTokenizer
from tests.runtime.test_tokenizer import ALL_PROMPTS, SLOW_FOLDERS, _ids

MODES = [
    dict(padding="longest", truncation=False),
    dict(padding="longest", truncation=True, max_length=20),
    dict(padding="max_length", truncation=True, max_length=10),
]


@pytest.mark.parametrize("mode", MODES, ids=lambda m: "-".join(str(v) for v in m.values()))
@pytest.mark.parametrize("name", SLOW_FOLDERS)
def test_modes_match_transformers(tokenizer_folders, reference_tokenizers, name, mode):
    slow, fast = reference_tokenizers[name]
    for flavor, ref in (("slow", slow), ("fast", fast)):
        ours = OurTokenizer.from_folder(tokenizer_folders[name], flavor=flavor)(ALL_PROMPTS, **mode)
        expected = ref(ALL_PROMPTS, return_tensors="np", **mode)
        np.testing.assert_array_equal(ours.input_ids, expected.input_ids, err_msg=flavor)
        np.testing.assert_array_equal(ours.attention_mask, expected.attention_mask, err_msg=flavor)


@pytest.mark.parametrize("flavor", ["slow", "fast"])
def test_max_length_without_truncation_pads_to_the_longest_row(tokenizer_folders, reference_tokenizers, flavor):
    """transformers cannot make one array of rows longer than max_length; we pad every row to the
    longest, which is transformers' padding="longest" for such a batch."""
    slow, fast = reference_tokenizers["large-sd"]
    batch = [p for p in ALL_PROMPTS if len(slow.tokenize(p)) > 75][:2] + ["a cat"]
    ours = OurTokenizer.from_folder(tokenizer_folders["large-sd"], flavor=flavor)(batch, padding="max_length",
                                                                                truncation=False)
    assert ours.input_ids.shape[1] > 77
    np.testing.assert_array_equal(ours.input_ids, _ids(slow if flavor == "slow" else fast, batch, padding="longest"))


@pytest.mark.parametrize("flavor", ["slow", "fast"])
def test_do_not_pad(tokenizer_folders, flavor):
    ours = OurTokenizer.from_folder(tokenizer_folders["tiny-sd"], flavor=flavor)
    assert ours(["the cat", "a dog"], padding="do_not_pad").input_ids.shape == (2, 4)
    with pytest.raises(ValueError, match="different lengths"):
        ours(["the cat", "a"], padding=False)
    with pytest.raises(TypeError, match="str"):
        ours(["a", 2])
