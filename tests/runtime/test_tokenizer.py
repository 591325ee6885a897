"""edge_sched's CLIPTokenizer against transformers' CLIPTokenizer (slow) and CLIPTokenizerFast, same files."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest

from edge_sched.pipelines.tokenizer import CLIPTokenizer as OurTokenizer

transformers = pytest.importorskip("transformers")

PROMPTS = [
    "a photo of an astronaut riding a horse on mars",
    "",
    " ",
    "A PHOTO OF A CAT",
    "MiXeD CaSe WoRdS",
    "  extra   whitespace\tand\ttabs\nand\r\nnewlines  ",
    "café naïve résumé über señor",
    "Ångström, Øresund, Łódź, Straße",
    "it's a dog's life, isn't it? we'll see; they'd've... I'm sure you're right",
    "'S 'T 'RE 'VE 'M 'LL 'D",
    "numbers 0 1 2 3 12345 3.14159 1,000,000 4k 8K 1080p",
    "punctuation!!! ??? ... --- ((( ))) [[ ]] {{ }} <> @#$%^&*_+=|\\/~`",
    "emoji 🐱🐶 🚀✨ 👍🏽",
    "猫と犬 一只猫 고양이 ねこ",
    "Ελληνικά ΟΔΟΣ σοφία Русский текст العربية עברית हिन्दी",
    "İstanbul ǅemal ﬁne ẞ",
    "zero\u200bwidth\u200dspaces\ufeff and\u00a0nbsp\u2003em-space\u2028line",
    "control\x00chars\x07here\x1f\x7f\x85",
    "replacement \ufffd char",
    "the <|endoftext|> cat <|startoftext|>",
    "upper <|ENDOFTEXT|> special",
    "!<|endoftext|>! and x<|endoftext|>y",
    "wow! hi!! !start end!",
    "masterpiece, best quality, (ultra detailed:1.2), [bad hands], <lora:foo:0.8>",
    "e\u0301 composed vs é precomposed, A\u030a",
    "very long prompt " * 40,
    "a " * 80,
    "thethethethe andandand catcatdog dogdog inin onon",
]


def _random_prompts(n: int, seed: int = 0) -> list[str]:
    """Random mixtures of words, digits, punctuation, accents, scripts and whitespace kinds."""
    rng = random.Random(seed)
    pieces = ["the", "cat", "dog", "and", "on", "in", "a", "photo", "Café", "ÉTÉ", "naïve", "東京", "ß", "Σ",
              "42", "7", "3.5", "!", "?", "'s", "'t", "'", "...", ",", "-", "(", ")", ":", "🙂", "\u0301", "İ",
              " ", "  ", "\t", "\n", "\u00a0", "\u3000", "x", "Q", "z9", "<|endoftext|>", "<|endOfText|>"]
    return ["".join(rng.choice(pieces) + rng.choice(["", " "]) for _ in range(rng.randint(0, 60))) for _ in range(n)]


ALL_PROMPTS = PROMPTS + _random_prompts(300)


def _ids(tok, prompts, **kw):
    return np.asarray(tok(prompts, return_tensors="np", **kw).input_ids, dtype=np.int64)


SLOW_FOLDERS = ["tiny-sd", "tiny-sdxl2", "large-sd", "large-sdxl2"]


@pytest.mark.parametrize("name", SLOW_FOLDERS)
def test_ids_match_transformers_slow_tokenizer(tokenizer_folders, reference_tokenizers, name):
    slow, _ = reference_tokenizers[name]
    ours = OurTokenizer.from_folder(tokenizer_folders[name])
    assert ours.model_max_length == slow.model_max_length == 77
    assert (ours.pad_token_id, ours.bos_token_id, ours.eos_token_id) == (slow.pad_token_id, slow.bos_token_id, slow.eos_token_id)
    out = ours(ALL_PROMPTS, padding="max_length", max_length=ours.model_max_length, truncation=True)
    ref = slow(ALL_PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="np")
    assert out.input_ids.dtype == np.int64 and out.input_ids.shape == (len(ALL_PROMPTS), 77)
    bad = [p for p, a, b in zip(ALL_PROMPTS, out.input_ids, ref.input_ids) if not np.array_equal(a, b)]
    assert not bad, f"{len(bad)} prompts differ, first: {bad[0]!r}"
    np.testing.assert_array_equal(out.attention_mask, ref.attention_mask)
    # default arguments are diffusers' call
    np.testing.assert_array_equal(ours(ALL_PROMPTS[:5]).input_ids, ref.input_ids[:5])


@pytest.mark.parametrize("name", SLOW_FOLDERS)
def test_untruncated_ids_and_removed_text_as_diffusers_reports_them(tokenizer_folders, reference_tokenizers, name):
    slow, _ = reference_tokenizers[name]
    ours = OurTokenizer.from_folder(tokenizer_folders[name])
    long = [p for p in ALL_PROMPTS if len(slow.tokenize(p)) > 75]
    assert len(long) >= 3
    batch = long[:3] + ["short one", ""]
    ours_un = ours(batch, padding="longest", truncation=False).input_ids
    ref_un = _ids(slow, batch, padding="longest")
    assert ours_un.shape[1] > 77
    np.testing.assert_array_equal(ours_un, ref_un)
    # diffusers' StableDiffusionPipeline.encode_prompt decodes ids[:, max_length - 1 : -1] for its warning
    assert ours.batch_decode(ours_un[:, 76:-1]) == slow.batch_decode(ref_un[:, 76:-1])
    for skip in (False, True):
        assert [ours.decode(r, skip_special_tokens=skip) for r in ours_un] == slow.batch_decode(ref_un, skip_special_tokens=skip)


@pytest.mark.parametrize("name", SLOW_FOLDERS)
def test_fast_flavor_matches_transformers_fast_tokenizer(tokenizer_folders, reference_tokenizers, name):
    _, fast = reference_tokenizers[name]
    ours = OurTokenizer.from_folder(tokenizer_folders[name], flavor="fast")
    out = ours(ALL_PROMPTS).input_ids
    ref = _ids(fast, ALL_PROMPTS, padding="max_length", max_length=77, truncation=True)
    bad = [p for p, a, b in zip(ALL_PROMPTS, out, ref) if not np.array_equal(a, b)]
    assert not bad, f"{len(bad)} prompts differ, first: {bad[0]!r}"


def test_slow_and_fast_disagree_and_we_follow_slow(tokenizer_folders, reference_tokenizers):
    """transformers' slow and fast CLIP tokenizers differ on CJK (slow splits ideographs apart) and on
    control / format characters (slow drops them); diffusers loads the slow one, so we match it."""
    slow, fast = reference_tokenizers["large-sd"]
    ours = OurTokenizer.from_folder(tokenizer_folders["large-sd"])
    ref_slow = _ids(slow, ALL_PROMPTS, padding="max_length", max_length=77, truncation=True)
    ref_fast = _ids(fast, ALL_PROMPTS, padding="max_length", max_length=77, truncation=True)
    differ = [i for i in range(len(ALL_PROMPTS)) if not np.array_equal(ref_slow[i], ref_fast[i])]
    assert PROMPTS.index("猫と犬 一只猫 고양이 ねこ") in differ
    assert PROMPTS.index("control\x00chars\x07here\x1f\x7f\x85") in differ
    np.testing.assert_array_equal(ours(ALL_PROMPTS).input_ids[differ], ref_slow[differ])


@pytest.mark.parametrize("name", ["tiny-sd-json", "tiny-sdxl2-json", "large-sd-json", "large-sdxl2-json"])
def test_from_tokenizer_json(tokenizer_folders, reference_tokenizers, name):
    """A folder with only tokenizer.json (saved by CLIPTokenizerFast.save_pretrained): the slow flavor gives
    the slow tokenizer's ids of the original files, the fast flavor the fast tokenizer's."""
    _, fast = reference_tokenizers[name]
    slow, _ = reference_tokenizers[name.removesuffix("-json")]
    ours_slow = OurTokenizer.from_folder(tokenizer_folders[name])
    ours_fast = OurTokenizer.from_folder(tokenizer_folders[name], flavor="fast")
    assert ours_slow.pad_token_id == slow.pad_token_id and ours_fast.pad_token_id == fast.pad_token_id
    np.testing.assert_array_equal(ours_slow(ALL_PROMPTS).input_ids,
                                  _ids(slow, ALL_PROMPTS, padding="max_length", max_length=77, truncation=True))
    np.testing.assert_array_equal(ours_fast(ALL_PROMPTS).input_ids,
                                  _ids(fast, ALL_PROMPTS, padding="max_length", max_length=77, truncation=True))


def test_sdxl_second_tokenizer_pads_with_bang(tokenizer_folders, reference_tokenizers):
    first = OurTokenizer.from_folder(tokenizer_folders["large-sd"])
    second = OurTokenizer.from_folder(tokenizer_folders["large-sdxl2"])
    assert first.pad_token == "<|endoftext|>" and second.pad_token == "!"
    bang = reference_tokenizers["large-sdxl2"][0].convert_tokens_to_ids("!")
    assert second.pad_token_id == bang != first.pad_token_id
    a, b = first("a cat").input_ids[0], second("a cat").input_ids[0]
    n = int(first("a cat").attention_mask.sum())
    np.testing.assert_array_equal(a[:n], b[:n])
    assert (a[n:] == first.eos_token_id).all() and (b[n:] == second.pad_token_id).all()


def test_folder_without_config_needs_max_length(tokenizer_folders):
    ours = OurTokenizer.from_folder(tokenizer_folders["tiny-raw"])
    raw = tokenizer_folders["tiny-raw"]
    slow = transformers.CLIPTokenizer(str(raw / "vocab.json"), str(raw / "merges.txt"))
    np.testing.assert_array_equal(ours(PROMPTS, max_length=77).input_ids,
                                  _ids(slow, PROMPTS, padding="max_length", max_length=77, truncation=True))
    with pytest.raises(ValueError, match="max_length"):
        ours("a cat")


def test_padding_modes(tokenizer_folders):
    ours = OurTokenizer.from_folder(tokenizer_folders["tiny-sd"])
    assert ours("the cat", padding="do_not_pad").input_ids.shape == (1, 4)
    assert ours(["the cat", "a"], padding="longest").input_ids.shape == (2, 4)
    assert ours(["the cat", "a"], padding="max_length", max_length=10).input_ids.shape == (2, 10)
    with pytest.raises(ValueError, match="different lengths"):
        ours(["the cat", "a"], padding=False)


def test_bad_input(tokenizer_folders, tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        OurTokenizer.from_folder(tmp_path)
    assert str(tmp_path) in str(e.value) and "vocab.json" in str(e.value) and "tokenizer.json" in str(e.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        OurTokenizer.from_folder(tmp_path / "nope")
    only_vocab = tmp_path / "only-vocab"
    only_vocab.mkdir()
    shutil.copy(tokenizer_folders["tiny-sd"] / "vocab.json", only_vocab)
    with pytest.raises(FileNotFoundError, match="merges.txt"):
        OurTokenizer.from_folder(only_vocab)
    with pytest.raises(ValueError, match="flavor='rust'.*slow, fast"):
        OurTokenizer.from_folder(tokenizer_folders["tiny-sd"], flavor="rust")
    ours = OurTokenizer.from_folder(tokenizer_folders["tiny-sd"])
    with pytest.raises(ValueError, match="padding='maximum'.*max_length, longest"):
        ours("a", padding="maximum")
    with pytest.raises(TypeError, match="str"):
        ours([1, 2])
    with pytest.raises(ValueError, match="empty"):
        ours([])
    broken = tmp_path / "broken"
    shutil.copytree(tokenizer_folders["tiny-sd"], broken)
    (broken / "tokenizer_config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="tokenizer_config.json.*not valid JSON"):
        OurTokenizer.from_folder(broken)


def _legacy_token(content: str) -> dict:
    return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True, "rstrip": False,
            "single_word": False}


@pytest.mark.parametrize("pad", ["<|endoftext|>", "!"])
def test_hub_style_legacy_configs(tokenizer_folders, tmp_path, pad):
    """tokenizer_config.json as SD 1.x / SDXL checkpoints ship it (AddedToken dicts with __type, no
    added_tokens_decoder, do_lower_case, clean_up_tokenization_spaces=true); pad "!" is SDXL's tokenizer_2."""
    folder = tmp_path / "tok"
    folder.mkdir()
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(tokenizer_folders["large-sd"] / name, folder)
    specials = {"bos_token": _legacy_token("<|startoftext|>"), "eos_token": _legacy_token("<|endoftext|>"),
                "unk_token": _legacy_token("<|endoftext|>"), "pad_token": pad}
    config = {"add_prefix_space": False, "clean_up_tokenization_spaces": True, "do_lower_case": True,
              "errors": "replace", "model_max_length": 77, "tokenizer_class": "CLIPTokenizer", **specials}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps(specials), encoding="utf-8")
    slow, fast = transformers.CLIPTokenizer.from_pretrained(folder), transformers.CLIPTokenizerFast.from_pretrained(folder)
    ours, ours_fast = OurTokenizer.from_folder(folder), OurTokenizer.from_folder(folder, flavor="fast")
    assert ours.pad_token_id == slow.pad_token_id and ours_fast.pad_token_id == fast.pad_token_id
    np.testing.assert_array_equal(ours(ALL_PROMPTS).input_ids,
                                  _ids(slow, ALL_PROMPTS, padding="max_length", max_length=77, truncation=True))
    np.testing.assert_array_equal(ours_fast(ALL_PROMPTS).input_ids,
                                  _ids(fast, ALL_PROMPTS, padding="max_length", max_length=77, truncation=True))
    full = ours(ALL_PROMPTS, padding="longest", truncation=False).input_ids
    np.testing.assert_array_equal(full, _ids(slow, ALL_PROMPTS, padding="longest"))
    assert ours.batch_decode(full[:, 76:-1]) == slow.batch_decode(full[:, 76:-1])
    assert ours.batch_decode(full, skip_special_tokens=True) == slow.batch_decode(full, skip_special_tokens=True)
