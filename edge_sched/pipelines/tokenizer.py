"""CLIP tokenizer for the runtime: transformers' ``CLIPTokenizer`` ids without transformers.

Method. CLIP tokenizes with byte-level BPE (end-of-word suffix ``</w>``). The byte-pair
merging, the pre-tokenizing regex and the byte-to-unicode mapping run in the ``tokenizers``
package (Rust); the text clean-up in front of them follows transformers' *slow*
``CLIPTokenizer`` (the class diffusers' ``model_index.json`` names), step by step:

1. added tokens (``<|startoftext|>``, ``<|endoftext|>``, and e.g. SDXL's second pad token
   ``!``) are cut out of the raw text first, leftmost-longest, honouring lstrip/rstrip;
2. every other piece is cleaned as transformers' BasicTokenizer does when ftfy is absent:
   drop NUL, U+FFFD and control characters, whitespace -> space, spaces around CJK
   ideographs, NFC, split on whitespace, ``str.lower()`` per word, join with one space;
3. CLIP's regex (case-insensitive, with the two special strings as first alternatives)
   splits the words; the special strings map straight to their ids, the rest goes through BPE.

The ids are ``[bos] + tokens + [eos]``, truncated to ``max_length`` (the tokens, not the
specials, are cut) and padded with the pad token of the files (``<|endoftext|>`` in SD,
``!`` in SDXL's ``tokenizer_2``): by the ``tokenizers`` library for ``flavor="fast"``, here for
the slow flavor (see ``__call__``).

``flavor="fast"`` gives transformers' ``CLIPTokenizerFast`` instead (NFC, whitespace runs ->
space, Rust lowercasing, no control-character removal or CJK splitting); use it when
``model_index.json`` names ``CLIPTokenizerFast``. The two differ on CJK text, control
characters and a few case mappings (e.g. final sigma).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import AddedToken as _RustAddedToken
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from ..jsonfile import read_json

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# transformers' CLIPTokenizer keeps the merges.txt lines [1, 49152 - 256 - 2 + 1): header skipped
_MERGES_KEPT = 49152 - 256 - 2
# transformers' "no limit" model_max_length when tokenizer_config.json does not give one
_NO_LIMIT = int(1e30)
_WORD_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
# the slow tokenizer matches its regex case-insensitively, the two special strings first
_SLOW_PATTERN = r"(?i)<\|startoftext\|>|<\|endoftext\|>|" + _WORD_PATTERN
_FLAVORS = ("slow", "fast")
_PADDINGS = ("max_length", "longest", "do_not_pad")
# CJK ideograph blocks that transformers' BasicTokenizer surrounds with spaces
_CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


@dataclass(frozen=True)
class SpecialToken:
    """An added token of tokenizer_config.json / special_tokens_map.json, with its matching flags."""

    content: str
    special: bool = True
    lstrip: bool = False
    rstrip: bool = False
    single_word: bool = False
    normalized: bool = False


@dataclass
class TokenizerOutput:
    """``input_ids`` and ``attention_mask`` (int64, [batch, length]); also readable as ``out["input_ids"]``."""

    input_ids: np.ndarray
    attention_mask: np.ndarray

    def __getitem__(self, key: str) -> np.ndarray:
        return getattr(self, key)


def _byte_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table (printable Latin-1 bytes map to themselves)."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {b: chr(b) for b in kept}, 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


_UNICODE_TO_BYTE = {c: b for b, c in _byte_to_unicode().items()}


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _CJK)


def basic_clean(text: str) -> str:
    """transformers' BasicTokenizer(strip_accents=False, do_split_on_punc=False) + lower-casing, joined by spaces."""
    out = []
    for ch in text:
        if ch in "\t\n\r" or unicodedata.category(ch) == "Zs":
            out.append(" ")
        elif ch in ("\x00", "\ufffd") or unicodedata.category(ch).startswith("C"):
            continue
        elif _is_cjk(ch):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    words = unicodedata.normalize("NFC", "".join(out)).split()
    return " ".join(w.lower() for w in words)


def _split_added(text: str, added: dict[str, SpecialToken]) -> list[str]:
    """Cut added tokens out of ``text`` (leftmost, longest first), then apply their strip flags."""
    if not added:
        return [text]
    lengths = sorted({len(c) for c in added}, reverse=True)
    parts, start, i = [], 0, 0
    while i < len(text):
        hit = next((text[i:i + n] for n in lengths if text[i:i + n] in added), None)
        if hit is None:
            i += 1
            continue
        parts += [text[start:i], hit]
        i = start = i + len(hit)
    parts.append(text[start:])
    parts = [p for p in parts if p]
    for k, part in enumerate(parts):
        tok = added.get(part)
        if tok is None:
            continue
        left = parts[k - 1] if k > 0 else None
        right = parts[k + 1] if k + 1 < len(parts) else None
        if tok.rstrip and right:
            parts[k + 1] = right.lstrip()
        if tok.lstrip and left:
            parts[k - 1] = left.rstrip()
        if tok.single_word and left and left[-1] != " ":
            parts[k - 1] += part
            parts[k] = ""
        elif tok.single_word and right and right[0] != " ":
            parts[k + 1] = part + parts[k + 1]
            parts[k] = ""
    return parts


class CLIPTokenizer:
    """Byte-level BPE CLIP tokenizer giving transformers' CLIPTokenizer ids (see the module docstring)."""

    def __init__(
        self,
        vocab: dict[str, int],
        merges: list[tuple[str, str]],
        *,
        bos_token: str = BOS,
        eos_token: str = EOS,
        unk_token: str = EOS,
        pad_token: str = EOS,
        added_tokens: list[tuple[int, SpecialToken]] = (),
        model_max_length: int = _NO_LIMIT,
        clean_up_tokenization_spaces: bool = False,
        flavor: str = "slow",
        backend: Tokenizer | None = None,
    ):
        if flavor not in _FLAVORS:
            raise ValueError(f"flavor={flavor!r} is not supported; allowed: {', '.join(_FLAVORS)}")
        self.flavor = flavor
        self.encoder = dict(vocab)
        self.model_max_length = int(model_max_length)
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.added: dict[str, SpecialToken] = {}
        for idx, tok in added_tokens:
            self.encoder.setdefault(tok.content, idx)
            self.added[tok.content] = tok
        # the four named tokens are always added (special) tokens; new ones get the next free ids
        for name in (bos_token, eos_token, unk_token, pad_token):
            if name not in self.added:
                self.added[name] = SpecialToken(name)
            if name not in self.encoder:
                self.encoder[name] = len(self.encoder)
        self.decoder = {i: t for t, i in self.encoder.items()}
        self.bos_token, self.eos_token, self.unk_token, self.pad_token = bos_token, eos_token, unk_token, pad_token
        self.bos_token_id, self.eos_token_id = self.encoder[bos_token], self.encoder[eos_token]
        self.unk_token_id, self.pad_token_id = self.encoder[unk_token], self.encoder[pad_token]

        if backend is not None:  # a fast tokenizer file, used as saved (flavor "fast")
            self._backend = backend
            self._backend.add_tokens([self._rust_token(t) for t in self._added_in_id_order()])
            self._set_fast_specials()
            return
        bpe = models.BPE(vocab=dict(vocab), merges=list(merges), continuing_subword_prefix="",
                         end_of_word_suffix="</w>", fuse_unk=False, unk_token=unk_token, dropout=None)
        self._backend = Tokenizer(bpe)
        if flavor == "slow":
            self._backend.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.Split(Regex(_SLOW_PATTERN), behavior="removed", invert=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ])
            self._bpe_cache: dict[str, list[int]] = {}
        else:  # what transformers' CLIPTokenizerFast builds (convert_slow_tokenizer.CLIPConverter)
            self._backend.normalizer = normalizers.Sequence(
                [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
            self._backend.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.Split(Regex(_WORD_PATTERN), behavior="removed", invert=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False),
            ])
            self._backend.decoder = decoders.ByteLevel()
            self._backend.add_tokens([self._rust_token(t) for t in self._added_in_id_order()])
            self._set_fast_specials()

    def _set_fast_specials(self) -> None:
        """bos + ids + eos by the library (these ids, whatever the file's post-processor says);
        truncation and padding are per call (``__call__``), never the file's saved settings."""
        self._backend.post_processor = processors.TemplateProcessing(
            single=f"{self.bos_token} $A {self.eos_token}",
            special_tokens=[(self.bos_token, self.bos_token_id), (self.eos_token, self.eos_token_id)])
        self._backend.no_truncation()
        self._backend.no_padding()

    def _added_in_id_order(self) -> list[SpecialToken]:
        return sorted(self.added.values(), key=lambda t: self.encoder[t.content])

    @staticmethod
    def _rust_token(t: SpecialToken) -> _RustAddedToken:
        return _RustAddedToken(t.content, single_word=t.single_word, lstrip=t.lstrip, rstrip=t.rstrip,
                               normalized=t.normalized, special=t.special)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_folder(cls, path: str | Path, flavor: str = "slow") -> CLIPTokenizer:
        """Load from a tokenizer folder: ``vocab.json`` + ``merges.txt``, or ``tokenizer.json``;
        ``tokenizer_config.json`` / ``special_tokens_map.json`` (when present) give
        ``model_max_length``, the special tokens and the added tokens."""
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"tokenizer folder {str(folder)!r} does not exist")
        vocab_file, merges_file, json_file = folder / "vocab.json", folder / "merges.txt", folder / "tokenizer.json"
        added: dict[str, tuple[int, SpecialToken]] = {}
        backend = None
        if flavor == "fast" and json_file.is_file():
            vocab, merges, added = _read_tokenizer_json(json_file)  # first: its errors name the file
            backend = Tokenizer.from_file(str(json_file))
        elif vocab_file.is_file() and merges_file.is_file():
            vocab = read_json(vocab_file)
            lines = merges_file.read_text(encoding="utf-8").strip().split("\n")[1:_MERGES_KEPT + 1]
            merges = [tuple(parts) for parts in (line.split() for line in lines) if len(parts) == 2]
            _check_vocab_and_merges(vocab, merges, vocab_file, merges_file)
        elif json_file.is_file():
            vocab, merges, added = _read_tokenizer_json(json_file)
        else:
            raise FileNotFoundError(
                f"no CLIP tokenizer files in {str(folder)!r}: looked for vocab.json + merges.txt, or tokenizer.json")
        config = read_json(folder / "tokenizer_config.json") if (folder / "tokenizer_config.json").is_file() else {}
        special_map = read_json(folder / "special_tokens_map.json") if (folder / "special_tokens_map.json").is_file() else {}
        for idx, entry in (config.get("added_tokens_decoder") or {}).items():
            tok = _special_token(entry, f"{folder / 'tokenizer_config.json'}: added_tokens_decoder[{idx}]")
            added[tok.content] = (int(idx), tok)
        names = {}
        for key, default in (("bos_token", BOS), ("eos_token", EOS), ("unk_token", EOS), ("pad_token", EOS)):
            value = config.get(key, special_map.get(key, default))
            if value is None:  # a null entry: CLIP's default token (the ids need a pad token)
                value = default
            # transformers wraps bos/eos/unk strings as normalized added tokens, a pad string as not normalized
            tok = _special_token(value, f"{folder}: {key}", normalized=key != "pad_token")
            names[key] = tok.content
            if tok.content not in added:
                added[tok.content] = (vocab.get(tok.content, -1), tok)
        max_len = config.get("model_max_length", _NO_LIMIT)
        if not isinstance(max_len, (int, float)) or max_len < 2:
            raise ValueError(f"{folder / 'tokenizer_config.json'}: model_max_length={max_len!r} must be an integer >= 2")
        # tokens absent from the vocabulary get the next free ids, in order, as transformers appends them
        listed, next_id = [], len(vocab)
        for i, t in added.values():
            if i < 0:
                i, next_id = next_id, next_id + 1
            listed.append((i, t))
        return cls(vocab, merges, added_tokens=listed, model_max_length=int(min(max_len, _NO_LIMIT)),
                   clean_up_tokenization_spaces=bool(config.get("clean_up_tokenization_spaces", False)),
                   flavor=flavor, backend=backend, **names)

    # ------------------------------------------------------------------ encoding
    def __len__(self) -> int:
        return len(self.encoder)

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without bos/eos, untruncated."""
        if not isinstance(text, str):
            raise TypeError(f"prompt must be a str, got {type(text).__name__}")
        if self.flavor == "fast":
            return self._backend.encode(text, add_special_tokens=False).ids
        ids: list[int] = []
        for part in _split_added(text, self.added):
            if part in self.added:
                ids.append(self.encoder[part])
                continue
            for piece, _ in self._backend.pre_tokenizer.pre_tokenize_str(basic_clean(part)):
                ids += self._bpe(piece)
        return ids

    def _bpe(self, piece: str) -> list[int]:
        if piece in (BOS, EOS):  # the slow tokenizer's regex yields these whole, never merged
            return [self.encoder.get(piece, self.unk_token_id)]
        ids = self._bpe_cache.get(piece)
        if ids is None:
            ids = self._bpe_cache[piece] = [t.id for t in self._backend.model.tokenize(piece)]
        return ids

    def __call__(self, prompts, padding="max_length", max_length: int | None = None,
                 truncation: bool = True, return_tensors: str | None = None) -> TokenizerOutput:
        """Tokenize one prompt or a list: ``[bos] + ids + [eos]``, truncated and padded as asked.

        ``padding``: "max_length" (to ``max_length``, default ``model_max_length``), "longest"
        (to the longest in the batch) or "do_not_pad" / False (all prompts must then have
        the same length). ``truncation=True`` cuts the prompt tokens so that the sequence
        fits ``max_length``. With ``padding="longest", truncation=False`` this gives the
        untruncated ids diffusers compares against to report what was cut off. ``return_tensors``: None or
        "np" (numpy int64 arrays either way); torch's "pt" is refused (no torch here)."""
        if return_tensors not in (None, "np"):
            raise ValueError(f"return_tensors={return_tensors!r}: this tokenizer returns numpy arrays; pass "
                             "return_tensors='np' (or leave it out)")
        batch, padding = prompt_batch(prompts, padding)
        if max_length is None and (truncation or padding == "max_length"):
            if self.model_max_length >= _NO_LIMIT:
                raise ValueError("this tokenizer has no model_max_length (tokenizer_config.json gives none): "
                                 "pass max_length")
            max_length = self.model_max_length
        if max_length is not None and max_length < 2:
            raise ValueError(f"max_length={max_length} must be at least 2 (room for bos and eos)")
        limit = max_length - 2 if truncation else None  # the prompt's tokens, leaving room for bos and eos
        if self.flavor == "fast":  # the library truncates, adds bos and eos, and pads
            encodings = self._backend.encode_batch(batch, add_special_tokens=False)
            if limit is not None:
                for e in encodings:
                    e.truncate(limit)
            encodings = [self._backend.post_process(e) for e in encodings]
            width = _padded_width([len(e.ids) for e in encodings], padding, max_length)
            for e in encodings:
                e.pad(width, pad_id=self.pad_token_id, pad_token=self.pad_token)
            return TokenizerOutput(input_ids=np.array([e.ids for e in encodings], dtype=np.int64),
                                   attention_mask=np.array([e.attention_mask for e in encodings], dtype=np.int64))
        # The slow flavor's ids come from transformers' clean-up and added-token splitting done here in
        # front of the library's BPE; the library truncates and pads only Encodings of its own encode,
        # and none can be made from ids, so these rows are assembled here.
        rows = [[self.bos_token_id, *self.encode(text)[:limit], self.eos_token_id] for text in batch]
        width = _padded_width([len(r) for r in rows], padding, max_length)
        input_ids = np.full((len(rows), width), self.pad_token_id, dtype=np.int64)
        mask = np.zeros_like(input_ids)
        for k, row in enumerate(rows):
            input_ids[k, :len(row)] = row
            mask[k, :len(row)] = 1
        return TokenizerOutput(input_ids=input_ids, attention_mask=mask)

    # ------------------------------------------------------------------ decoding
    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Text of ``ids`` as transformers' slow CLIPTokenizer.decode writes it (``</w>`` -> space)."""
        specials = {t for t, tok in self.added.items() if tok.special}
        legacy = {t for t, tok in self.added.items() if not tok.special}
        texts, current = [], []
        for i in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
            token = self.decoder.get(i)
            if token is None or (skip_special_tokens and token in specials):
                continue
            if token in legacy:
                if current and (s := self._tokens_to_string(current)):
                    texts.append(s)
                current = []
                texts.append(token)
            else:
                current.append(token)
        if current:
            texts.append(self._tokens_to_string(current))
        text = " ".join(texts)
        if self.clean_up_tokenization_spaces:
            for old, new in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                             (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
                text = text.replace(old, new)
        return text

    def batch_decode(self, rows, skip_special_tokens: bool = False) -> list[str]:
        return [self.decode(row, skip_special_tokens=skip_special_tokens) for row in np.asarray(rows)]

    @staticmethod
    def _tokens_to_string(tokens: list[str]) -> str:
        raw = bytearray(_UNICODE_TO_BYTE[c] for c in "".join(tokens) if c in _UNICODE_TO_BYTE)
        return raw.decode("utf-8", errors="replace").replace("</w>", " ").strip()


def _padded_width(lengths: list[int], padding: str, max_length: int | None) -> int:
    """The batch's width: ``max_length`` ("max_length"; rows longer when not truncated) or the longest row."""
    if padding == "do_not_pad" and len(set(lengths)) > 1:
        raise ValueError("prompts tokenize to different lengths; use padding='longest' or 'max_length'")
    return max(max_length if padding == "max_length" else 0, *lengths)


def _special_token(value, where: str, normalized: bool = False) -> SpecialToken:
    """A token given as a string or as transformers' AddedToken dict."""
    if isinstance(value, str):
        return SpecialToken(value, normalized=normalized)
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        flags = {k: bool(value[k]) for k in ("special", "lstrip", "rstrip", "single_word", "normalized") if k in value}
        return SpecialToken(value["content"], **flags)
    raise ValueError(f"{where}: expected a token string or a dict with 'content', got {value!r}")


def _check_vocab_and_merges(vocab, merges, vocab_file: Path, merges_file: Path) -> None:
    """What the BPE model needs, said in the files' terms (the tokenizers library names its internals)."""
    if not isinstance(vocab, dict) or not vocab:
        raise ValueError(f"{vocab_file}: the vocabulary is empty; a CLIP vocab.json maps tokens to ids")
    bad = next(((k, v) for k, v in vocab.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0), None)
    if bad is not None:
        raise ValueError(f"{vocab_file}: token {bad[0]!r} has id {bad[1]!r}; ids must be integers >= 0")
    for n, (a, b) in enumerate(merges, 1):
        for token in (a, b, a + b):
            if token not in vocab:
                raise ValueError(f"{merges_file}: merge {n} ({a!r} + {b!r}) needs {token!r}, which is not in "
                                 f"{vocab_file.name}; the two files do not belong together")


def _read_tokenizer_json(path: Path):
    """vocab, merges and added tokens of a byte-level BPE ``tokenizer.json`` (fast tokenizer file)."""
    data = read_json(path)
    model = data.get("model") or {}
    if model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise ValueError(f"{path}: expected a BPE model with a vocab (a CLIP tokenizer), got type {model.get('type')!r}")
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model.get("merges", [])]
    added = {}
    for entry in data.get("added_tokens") or []:
        tok = _special_token(entry, f"{path}: added_tokens")
        added[tok.content] = (int(entry["id"]), tok)
    return model["vocab"], merges, added


def prompt_batch(prompts, padding) -> tuple[list[str], str]:
    """A tokenizer call's prompts as a non-empty list of str, and ``padding`` as one of ``_PADDINGS``
    (True -> "longest", False / None -> "do_not_pad"), as transformers takes them."""
    batch = [prompts] if isinstance(prompts, str) else list(prompts)
    if not batch:
        raise ValueError("prompts is empty: give a string or a non-empty list of strings")
    for text in batch:
        if not isinstance(text, str):
            raise TypeError(f"prompt must be a str, got {type(text).__name__}")
    if padding is True:
        padding = "longest"
    elif padding is False or padding is None:
        padding = "do_not_pad"
    if padding not in _PADDINGS:
        raise ValueError(f"padding={padding!r} is not supported; allowed: {', '.join(_PADDINGS)}, True, False")
    return batch, padding
