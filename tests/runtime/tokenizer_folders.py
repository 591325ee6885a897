"""Tokenizer folders saved by transformers for the tokenizer tests (built once a session by the
``tokenizer_folders`` fixture of conftest.py), and transformers' own tokenizers of them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.export.tiny import write_clip_tokenizer_files


def train_vocab(folder: Path) -> tuple[Path, Path]:
    """A larger CLIP-style byte-level bpe vocabulary (every byte alone and word-final, ~3000 merges),
    learnt with the tokenizers trainer from local text (diffusers' scheduler sources + a few scripts)."""
    import diffusers
    from tokenizers import (
        Regex,
        Tokenizer,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )

    src = Path(diffusers.__file__).parent / "schedulers"
    corpus = [p.read_text(encoding="utf-8") for p in sorted(src.glob("scheduling_*.py"))[:20]]
    corpus += ["café naïve résumé über straße ñandú 東京 猫 一只猫 고양이 ελληνικά русский текст"] * 50
    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>", continuing_subword_prefix=""))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"), "removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(vocab_size=3600, end_of_word_suffix="</w>", show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    merges = json.loads(tok.to_str())["model"]["merges"]
    merges = [m.split(" ") if isinstance(m, str) else m for m in merges]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(dict.fromkeys(tokens))}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")
    return folder / "vocab.json", folder / "merges.txt"


def save_tokenizer_folders(root: Path) -> dict[str, Path]:
    """Tiny and trained vocabularies, SD (pad <|endoftext|>) and SDXL tokenizer_2 style (pad "!"), slow
    files, and a tokenizer.json-only folder (``-json``)."""
    import transformers

    raw = {"tiny": write_clip_tokenizer_files(root / "src-tiny"), "large": train_vocab(root / "src-large")}
    out = {}
    for vocab_name, (vocab, merges) in raw.items():
        for pad in ("<|endoftext|>", "!"):
            name = f"{vocab_name}-{'sdxl2' if pad == '!' else 'sd'}"
            transformers.CLIPTokenizer(str(vocab), str(merges), model_max_length=77, pad_token=pad).save_pretrained(root / name)
            out[name] = root / name
            fast = root / (name + "-json")
            transformers.CLIPTokenizerFast(str(vocab), str(merges), model_max_length=77, pad_token=pad).save_pretrained(fast)
            (fast / "vocab.json").unlink()
            (fast / "merges.txt").unlink()
            out[name + "-json"] = fast
    out["tiny-raw"] = raw["tiny"][0].parent  # vocab.json + merges.txt only: no model_max_length
    return out


def transformers_tokenizers(folders: dict[str, Path]) -> dict[str, tuple]:
    """(slow, fast) transformers tokenizers of every folder (the -json folders load the fast one only)."""
    import transformers

    refs = {}
    for name, folder in folders.items():
        if name.endswith("-json"):
            refs[name] = (None, transformers.CLIPTokenizerFast.from_pretrained(folder))
        elif name != "tiny-raw":
            refs[name] = (transformers.CLIPTokenizer.from_pretrained(folder),
                          transformers.CLIPTokenizerFast.from_pretrained(folder))
    return refs
