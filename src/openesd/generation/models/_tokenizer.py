"""CLIP tokenizer files (vocab.json, merges.txt) derived from the BPE vocabulary shipped in `_configs/`.

`bpe_simple_vocab_16e6.txt.gz` is OpenAI CLIP's vocabulary as `open_clip_torch` ships it; the
derivation below is CLIP's own (byte-level symbols, their `</w>` forms, the merges, two specials).
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

BPE_FILE = Path(__file__).parent / "_configs" / "bpe_simple_vocab_16e6.txt.gz"
VOCAB_SIZE = 49408


def _bytes_to_unicode() -> dict[int, str]:
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars)))


@lru_cache(maxsize=1)
def clip_vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    """The 49408-token CLIP vocabulary and its 48894 merges, in CLIP's order."""
    lines = gzip.open(BPE_FILE).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    symbols = list(_bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(vocab)}, merges


def write_tokenizer(folder: Path, config: dict) -> Path:
    """Write a transformers CLIPTokenizer folder (vocab, merges, tokenizer_config) into `folder`."""
    vocab, merges = clip_vocab_and_merges()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    specials = {k: config[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
    (folder / "special_tokens_map.json").write_text(json.dumps(specials, indent=1), encoding="utf-8")
    return folder


T5_FILE = Path(__file__).parent / "_configs" / "t5_tokenizer.json.gz"


def t5_tokenizer(max_length: int = 512) -> Any:
    """The T5 v1.1 tokenizer FLUX.1 and SD 3 use (32000 SentencePiece pieces + 100 extra ids), offline.

    `t5_tokenizer.json.gz` is the `tokenizer.json` of google/t5-v1_1-xxl (Apache-2.0) as the `diffsynth`
    1.1.7 package ships it (Apache-2.0); the `tokenizers` library reads it, so no sentencepiece is needed."""
    from tokenizers import Tokenizer
    from transformers import T5TokenizerFast

    tokenizer = Tokenizer.from_str(_t5_json())
    return T5TokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        extra_ids=100,
        model_max_length=max_length,
    )


@lru_cache(maxsize=1)
def _t5_json() -> str:
    return gzip.open(T5_FILE).read().decode("utf-8")
