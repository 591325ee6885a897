"""Tokenizers of the flow-matching pipelines' text encoders (T5, Gemma): transformers' fast tokenizer
ids from a ``tokenizer.json``, with the ``tokenizers`` package only.

Method. transformers' ``T5TokenizerFast`` / ``GemmaTokenizerFast`` are the Rust tokenizer of
``tokenizer.json`` plus per-call settings; the same settings are applied here:

- truncation to ``max_length`` (special tokens included: the library truncates, then the
  post-processor adds ``</s>`` / ``<bos>``), on ``truncation_side``;
- padding to ``max_length`` ("max_length") or to the longest row ("longest"), with the pad token of
  ``tokenizer_config.json`` (its id from the vocabulary), on ``padding_side``;
- Gemma / Llama fast tokenizers rebuild their post-processor from ``add_bos_token`` /
  ``add_eos_token`` when loaded; that is repeated, so a ``tokenizer.json`` whose saved
  post-processor disagrees with its config gives transformers' ids;
- added tokens listed only in ``tokenizer_config.json`` (``added_tokens_decoder``) are added, as
  transformers adds them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import AddedToken, Tokenizer, processors

from ..jsonfile import read_json
from .tokenizer import TokenizerOutput, prompt_batch

# transformers' "no limit" model_max_length when tokenizer_config.json does not give one
_NO_LIMIT = int(1e30)
_SIDES = ("right", "left")
# fast tokenizer classes whose post-processor transformers rebuilds from add_bos_token / add_eos_token
_TEMPLATE_FROM_FLAGS = ("GemmaTokenizer", "GemmaTokenizerFast", "LlamaTokenizer", "LlamaTokenizerFast")
# transformers' class default when tokenizer_config.json gives no padding_side (the rest pad on the right)
_LEFT_PADDING_CLASSES = _TEMPLATE_FROM_FLAGS


def _token_content(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    raise ValueError(f"expected a token string or a dict with 'content', got {value!r}")


class FastTokenizer:
    """A ``tokenizer.json`` tokenizer called like transformers' fast tokenizers (see the module docstring)."""

    def __init__(self, backend: Tokenizer, *, pad_token: str | None, model_max_length: int = _NO_LIMIT,
                 padding_side: str = "right", truncation_side: str = "right", source: str = "tokenizer"):
        for name, side in (("padding_side", padding_side), ("truncation_side", truncation_side)):
            if side not in _SIDES:
                raise ValueError(f"{source}: {name}={side!r} is not supported; allowed: {', '.join(_SIDES)}")
        self._backend = backend
        self.source = source
        self.model_max_length = int(model_max_length)
        self.padding_side, self.truncation_side = padding_side, truncation_side
        self.pad_token = pad_token
        self.pad_token_id = None if pad_token is None else backend.token_to_id(pad_token)
        if pad_token is not None and self.pad_token_id is None:
            raise ValueError(f"{source}: the pad token {pad_token!r} is not in the vocabulary")
        self._backend.no_truncation()
        self._backend.no_padding()

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_folder(cls, path: str | Path) -> "FastTokenizer":
        """``tokenizer.json`` (required: ``edge-sched export`` writes it) and ``tokenizer_config.json``."""
        folder = Path(path)
        json_file = folder / "tokenizer.json"
        if not json_file.is_file():
            found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else "no such folder"
            raise FileNotFoundError(
                f"{folder}: no tokenizer.json (found: {found}); the runtime reads fast tokenizer files: "
                "export the pipeline with `edge-sched export`, which writes them")
        read_json(json_file, "a fast tokenizer file")  # a readable error for a broken file
        backend = Tokenizer.from_file(str(json_file))
        config_file = folder / "tokenizer_config.json"
        config = read_json(config_file) if config_file.is_file() else {}
        special_map = read_json(folder / "special_tokens_map.json") if (folder / "special_tokens_map.json").is_file() else {}

        def special(key):
            return _token_content(config.get(key, special_map.get(key)))

        added = []
        for idx, entry in sorted((config.get("added_tokens_decoder") or {}).items(), key=lambda kv: int(kv[0])):
            content = _token_content(entry)
            if backend.token_to_id(content) is None:
                added.append(AddedToken(content, special=bool(entry.get("special", True)),
                                        lstrip=bool(entry.get("lstrip", False)), rstrip=bool(entry.get("rstrip", False)),
                                        single_word=bool(entry.get("single_word", False)),
                                        normalized=bool(entry.get("normalized", False))))
        if added:
            backend.add_special_tokens(added)
        cls_name = str(config.get("tokenizer_class"))
        if cls_name in _TEMPLATE_FROM_FLAGS:
            _template_from_flags(backend, special("bos_token"), special("eos_token"),
                                 bool(config.get("add_bos_token", True)), bool(config.get("add_eos_token", False)),
                                 json_file)
        max_len = config.get("model_max_length", _NO_LIMIT)
        if not isinstance(max_len, (int, float)) or max_len < 1:
            raise ValueError(f"{config_file}: model_max_length={max_len!r} must be a positive integer")
        return cls(backend, pad_token=special("pad_token"), model_max_length=int(min(max_len, _NO_LIMIT)),
                   padding_side=config.get("padding_side", "left" if cls_name in _LEFT_PADDING_CLASSES else "right"),
                   truncation_side=config.get("truncation_side", "right"), source=str(folder))

    # ------------------------------------------------------------------ encoding
    def __len__(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of one text, untruncated."""
        if not isinstance(text, str):
            raise TypeError(f"prompt must be a str, got {type(text).__name__}")
        return self._backend.encode(text, add_special_tokens=add_special_tokens).ids

    def __call__(self, prompts, padding="max_length", max_length: int | None = None, truncation: bool = True,
                 add_special_tokens: bool = True) -> TokenizerOutput:
        """``input_ids`` / ``attention_mask`` [batch, length] int64, as transformers' fast tokenizer returns them."""
        batch, padding = prompt_batch(prompts, padding)
        if max_length is None and (truncation or padding == "max_length"):
            if self.model_max_length >= _NO_LIMIT:
                raise ValueError(f"{self.source}: this tokenizer has no model_max_length (tokenizer_config.json gives "
                                 "none): pass max_length")
            max_length = self.model_max_length
        if max_length is not None and (not isinstance(max_length, (int, np.integer)) or max_length < 1):
            raise ValueError(f"max_length must be a positive integer, got {max_length!r}")
        if padding != "do_not_pad" and self.pad_token_id is None:
            raise ValueError(f"{self.source}: padding needs a pad token; tokenizer_config.json names none")
        try:
            if truncation:
                self._backend.enable_truncation(int(max_length), stride=0, strategy="longest_first",
                                                direction=self.truncation_side)
            if padding != "do_not_pad":
                self._backend.enable_padding(direction=self.padding_side, pad_id=self.pad_token_id, pad_type_id=0,
                                             pad_token=self.pad_token,
                                             length=int(max_length) if padding == "max_length" else None)
            encodings = self._backend.encode_batch(batch, add_special_tokens=add_special_tokens)
        finally:
            self._backend.no_truncation()
            self._backend.no_padding()
        lengths = {len(e.ids) for e in encodings}
        if len(lengths) > 1:
            raise ValueError("prompts tokenize to different lengths; use padding='longest' or 'max_length'")
        return TokenizerOutput(input_ids=np.array([e.ids for e in encodings], dtype=np.int64),
                               attention_mask=np.array([e.attention_mask for e in encodings], dtype=np.int64))

    # ------------------------------------------------------------------ decoding
    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self._backend.decode(np.asarray(ids, dtype=np.int64).reshape(-1).tolist(),
                                    skip_special_tokens=skip_special_tokens)

    def batch_decode(self, rows, skip_special_tokens: bool = False) -> list[str]:
        return [self.decode(row, skip_special_tokens=skip_special_tokens) for row in np.asarray(rows)]


def _template_from_flags(backend: Tokenizer, bos: str | None, eos: str | None, add_bos: bool, add_eos: bool,
                         where: Path) -> None:
    """transformers' Gemma/Llama ``update_post_processor``: ``[bos] $A [eos]`` by the two flags."""
    specials, single, pair_tail = [], [], []
    for flag, token, name in ((add_bos, bos, "bos_token"), (add_eos, eos, "eos_token")):
        if flag:
            if token is None or backend.token_to_id(token) is None:
                raise ValueError(f"{where}: add_{name.split('_')[0]}_token is set but {name} {token!r} is not in the "
                                 "vocabulary")
            specials.append((token, backend.token_to_id(token)))
    head = [f"{bos}:0"] if add_bos else []
    tail = [f"{eos}:0"] if add_eos else []
    single = [*head, "$A:0", *tail]
    pair_tail = ([f"{bos}:1"] if add_bos else []) + ["$B:1"] + ([f"{eos}:1"] if add_eos else [])
    backend.post_processor = processors.TemplateProcessing(single=" ".join(single),
                                                           pair=" ".join(single + pair_tail),
                                                           special_tokens=specials)


def load_fast_tokenizer(folder: Path, name: str) -> FastTokenizer:
    """The tokenizer in ``folder/name`` (a T5 or Gemma ``tokenizer.json``)."""
    return FastTokenizer.from_folder(folder / name)
