"""Parsed prompt runs -> the WebUI's 77-token chunks (a weight per token, embeddings placed), as `tokenize_line`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openesd.errors import ModelError
from openesd.generation.prompts._parser import BREAK

CHUNK = 75  # tokens of text per chunk; BOS and EOS make it 77
COMMA_BACKTRACK = 20  # the WebUI's default `comma_padding_backtrack`


@dataclass
class Chunk:
    """77 token ids, a weight per token, and (offset, vectors) of embeddings to swap in."""

    tokens: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    fixes: list[tuple[int, Any]] = field(default_factory=list)  # offset counts from the token after BOS


@dataclass
class Vocabulary:
    """What chunking needs from one tokenizer and the embeddings usable with its encoder."""

    tokenizer: Any
    embeddings: dict[int, list[tuple[list[int], Any]]]  # first token id -> [(name ids, vectors)], longest first
    comma: int | None = None

    def __post_init__(self) -> None:
        self.comma = self.tokenizer.convert_tokens_to_ids(",</w>")

    @property
    def bos(self) -> int:
        return self.tokenizer.bos_token_id

    @property
    def eos(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def pad(self) -> int:
        pad = self.tokenizer.pad_token_id
        return self.eos if pad is None else pad

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, truncation=False, add_special_tokens=False)["input_ids"]

    def embedding_at(self, tokens: list[int], position: int) -> tuple[list[int], Any] | None:
        for ids, vectors in self.embeddings.get(tokens[position], []):
            if tokens[position : position + len(ids)] == ids:
                return ids, vectors
        return None


def make_chunks(runs: list[tuple[str, float]], vocab: Vocabulary) -> list[Chunk]:
    """Chunks for one prompt; an empty prompt gives one chunk of BOS, EOS and padding."""
    builder = _Builder(vocab)
    texts = [text for text, _ in runs]
    for tokens, (text, weight) in zip(vocab.tokenize(texts), runs):
        if text == BREAK and weight == -1:
            builder.next_chunk()
            continue
        builder.add_run(tokens, weight)
    return builder.finish()


class _Builder:
    def __init__(self, vocab: Vocabulary):
        self.vocab = vocab
        self.chunks: list[Chunk] = []
        self.chunk = Chunk()
        self.last_comma = -1

    def add_run(self, tokens: list[int], weight: float) -> None:
        position = 0
        while position < len(tokens):
            token = tokens[position]
            if token == self.vocab.comma:
                self.last_comma = len(self.chunk.tokens)
            elif self._full() and self.last_comma != -1 and len(self.chunk.tokens) - self.last_comma <= COMMA_BACKTRACK:
                self._move_after_comma()
            if self._full():
                self.next_chunk()
            found = self.vocab.embedding_at(tokens, position)
            if found is None:
                self.chunk.tokens.append(token)
                self.chunk.weights.append(weight)
                position += 1
                continue
            ids, vectors = found
            self._add_embedding(vectors, weight)
            position += len(ids)

    def _full(self) -> bool:
        return len(self.chunk.tokens) == CHUNK

    def _add_embedding(self, vectors: Any, weight: float) -> None:
        count = int(vectors.shape[0])
        if count > CHUNK:
            name = getattr(getattr(vectors, "embedding", None), "name", "?")
            raise ModelError(f"embedding {name!r} has {count} vectors; at most {CHUNK} fit in one prompt chunk")
        if len(self.chunk.tokens) + count > CHUNK:
            self.next_chunk()
        self.chunk.fixes.append((len(self.chunk.tokens), vectors))
        # Placeholder id 0 as in the WebUI (never EOS, which marks the pooled position).
        self.chunk.tokens += [0] * count
        self.chunk.weights += [weight] * count

    def _move_after_comma(self) -> None:
        """Hand the words after the last comma to the next chunk, embeddings included."""
        cut = self.last_comma + 1
        old = self.chunk
        moved = Chunk(old.tokens[cut:], old.weights[cut:], [(o - cut, v) for o, v in old.fixes if o >= cut])
        old.tokens, old.weights = old.tokens[:cut], old.weights[:cut]
        old.fixes = [(o, v) for o, v in old.fixes if o < cut]
        self.next_chunk()
        self.chunk = moved

    def next_chunk(self) -> None:
        chunk, vocab = self.chunk, self.vocab
        fill = CHUNK - len(chunk.tokens)
        # EOS ends the text; encoders whose pad differs (OpenCLIP) see pad after the first EOS.
        chunk.tokens = [vocab.bos, *chunk.tokens, vocab.eos] + [vocab.pad] * fill
        chunk.weights = [1.0, *chunk.weights, 1.0] + [1.0] * fill
        self.chunks.append(chunk)
        self.chunk = Chunk()
        self.last_comma = -1

    def finish(self) -> list[Chunk]:
        if self.chunk.tokens or not self.chunks:
            self.next_chunk()
        return self.chunks
