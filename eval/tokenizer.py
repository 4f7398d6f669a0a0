"""Tokenizers for the LM recipes: byte-level ids (vocab 256), local byte-level BPE, or pre-tokenized ids.

* ``byte``: every byte of the UTF-8 file is one id, vocabulary 256 -- the CPU recipe (spec §9.2); no
  vocabulary to train or ship, and it reads any file (invalid UTF-8 included).
* ``bpe``: a byte-level BPE vocabulary trained locally with Hugging Face ``tokenizers`` on the *train*
  split only (held-out text never shapes the vocabulary), GPT-2 style (byte-level pre-tokenizer, so no
  unknown tokens). Saved as ``tokenizer.json`` and reused when present.
* a ``tokenizer.json`` path: any Hugging Face ``tokenizers`` vocabulary the user already has (the
  CodeParrot recipe's ``code-search-net-tokenizer``, exported once).
* ``pretokenized``: the corpus already stores ids (Languini books); the vocabulary is the corpus's.
"""
from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from zoo.core.errors import DataError
from zoo.core.fileio import atomic_path

logger = logging.getLogger(__name__)

END_OF_TEXT = "<|endoftext|>"  # GPT-2's document separator, kept so exported vocabularies look familiar
MIN_BPE_VOCAB = 256 + 1  # the byte alphabet plus the special token


class Tokenizer(Protocol):
    """What the data pipeline needs from a tokenizer."""

    kind: str
    vocab_size: int

    def encode_batch(self, docs: Sequence[bytes]) -> list[np.ndarray]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def fingerprint(self) -> str: ...


class ByteTokenizer:
    """UTF-8 bytes as ids 0..255."""

    kind = "byte"
    vocab_size = 256

    def encode(self, data: bytes | str) -> np.ndarray:
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        return np.frombuffer(raw, dtype=np.uint8).astype(np.int64)

    def encode_batch(self, docs: Sequence[bytes]) -> list[np.ndarray]:
        return [self.encode(d) for d in docs]

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")

    def fingerprint(self) -> str:
        return "byte256"


class BPETokenizer:
    """A Hugging Face ``tokenizers`` vocabulary read from ``tokenizer.json``."""

    kind = "bpe"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"Tokenizer file not found: {self.path}")
        try:
            self._tok = HFTokenizer.from_file(str(self.path))
        except Exception as err:  # tokenizers raises a bare Exception on malformed JSON
            raise DataError(f"{self.path} is not a Hugging Face tokenizers JSON file ({err}).") from err
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        self._digest = hashlib.sha256(self.path.read_bytes()).hexdigest()

    def encode(self, data: bytes | str) -> np.ndarray:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8", errors="replace")
        return np.asarray(self._tok.encode(text).ids, dtype=np.int64)

    def encode_batch(self, docs: Sequence[bytes]) -> list[np.ndarray]:
        texts = [d if isinstance(d, str) else bytes(d).decode("utf-8", errors="replace") for d in docs]
        return [np.asarray(e.ids, dtype=np.int64) for e in self._tok.encode_batch(texts)]

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode([int(i) for i in ids])

    def fingerprint(self) -> str:
        return f"bpe{self.vocab_size}-{self._digest[:16]}"


class PretokenizedIds:
    """Identity "tokenizer" for corpora that store ids; checks them against the vocabulary."""

    kind = "pretokenized"

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = int(vocab_size)

    def encode_batch(self, docs: Sequence[np.ndarray]) -> list[np.ndarray]:
        out = []
        for ids in docs:
            arr = np.asarray(ids).astype(np.int64)
            if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
                raise DataError(f"Pre-tokenized document has id {int(arr.max())} outside the vocabulary "
                                f"[0, {self.vocab_size}); the corpus and its vocabulary do not match.")
            out.append(arr)
        return out

    def decode(self, ids: Sequence[int]) -> str:
        raise DataError("Pre-tokenized corpora carry no vocabulary to decode with.")

    def fingerprint(self) -> str:
        return f"ids{self.vocab_size}"


def train_bpe(texts: Iterable[bytes], vocab_size: int, path: str | os.PathLike[str], *, length: int | None = None,
              show_progress: bool = False) -> BPETokenizer:
    """Train a byte-level BPE vocabulary of ``vocab_size`` ids on ``texts`` and save it to ``path`` atomically.

    Args:
        texts: training documents (UTF-8 bytes; invalid sequences become U+FFFD).
        vocab_size: ids in the vocabulary, special token included (>= 257).
        path: where ``tokenizer.json`` goes.
        length: number of documents, for the progress bar.
    """
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    if vocab_size < MIN_BPE_VOCAB:
        raise ValueError(f"vocab_size={vocab_size} is too small for byte-level BPE; use at least {MIN_BPE_VOCAB} "
                         "(or tokenizer: byte for the 256-id byte vocabulary).")
    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT], show_progress=show_progress,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    decoded = (t.decode("utf-8", errors="replace") if isinstance(t, bytes) else t for t in texts)
    tok.train_from_iterator(decoded, trainer=trainer, length=length)
    with atomic_path(path, suffix=".json") as tmp:
        tok.save(str(tmp))
    logger.info("trained a %d-id byte-level BPE vocabulary -> %s", tok.get_vocab_size(), path)
    return BPETokenizer(path)
