"""Token files: a corpus split tokenized once into a memory-mapped id array, cut into T-token chunks.

Layout for a stem ``DIR/train``::

    train.bin        the ids of every document back to back (uint16 when the vocabulary fits, else uint32)
    train.docs.npy   int64 offsets, n_docs + 1 of them: document d is bin[offsets[d]:offsets[d + 1]]
    train.json       format, dtype, counts, tokenizer and corpus fingerprints -- written last, so its
                     presence means the two files above are complete (each is written atomically)

Chunks never cross a document boundary: each document gives floor(len / T) chunks of T ids and its
partial last chunk is dropped, as the CodeParrot recipe does (spec pi_transformer.md §9.1, §14). The
chunk -> position map is computed from per-document counts, so it costs O(documents) memory even for
the 16.7M chunks of the full recipe, and any T can be cut from the same file.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from zoo.core.errors import DataError
from zoo.core.fileio import atomic_path, write_json_atomic

logger = logging.getLogger(__name__)

TOKEN_FORMAT = "effzoo-tokens/1"
_ENCODE_BATCH = 64  # documents per tokenizer call (the BPE tokenizer encodes a batch in parallel)


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits (vocabularies up to 65,536), else uint32: half the disk and page cache."""
    if vocab_size <= 0:
        raise ValueError(f"vocab_size={vocab_size} must be positive.")
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def write_token_file(stem: str | os.PathLike[str], docs: Iterable[Any], tokenizer: Any, *,
                     total: int | None = None, meta: dict[str, Any] | None = None, desc: str = "tokenizing",
                     progress: bool = True) -> TokenFile:
    """Tokenize ``docs`` (bytes, or id arrays for pre-tokenized corpora) into ``stem.bin`` / ``.docs.npy`` / ``.json``.

    Args:
        stem: output path without suffix.
        docs: document contents, in order.
        tokenizer: has ``encode_batch(list) -> list[np.ndarray]`` and ``vocab_size``.
        total: number of documents (progress bar).
        meta: extra provenance stored in the JSON (corpus fingerprint, ...).
        progress: show a tqdm bar on stderr.

    Returns:
        the written :class:`TokenFile`.
    """
    stem = Path(stem)
    dtype = token_dtype(tokenizer.vocab_size)
    offsets = [0]
    bar = tqdm(total=total, desc=desc, unit="doc", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    with atomic_path(stem.with_suffix(".bin")) as tmp, open(tmp, "wb") as fh:
        pending: list[Any] = []

        def flush() -> None:
            for ids in tokenizer.encode_batch(pending):
                if ids.size and int(ids.max()) >= tokenizer.vocab_size:
                    raise DataError(f"Token id {int(ids.max())} >= vocab_size {tokenizer.vocab_size}; "
                                    "the tokenizer and its declared vocabulary disagree.")
                fh.write(np.ascontiguousarray(ids, dtype=dtype).tobytes())
                offsets.append(offsets[-1] + int(ids.size))
            bar.update(len(pending))
            bar.set_postfix(tokens=offsets[-1], refresh=False)
            pending.clear()

        for doc in docs:
            pending.append(doc)
            if len(pending) >= _ENCODE_BATCH:
                flush()
        if pending:
            flush()
        fh.flush()
    bar.close()
    with atomic_path(stem.with_suffix(".docs.npy"), suffix=".npy") as tmp:
        np.save(tmp, np.asarray(offsets, dtype=np.int64))
    write_json_atomic(stem.with_suffix(".json"), {
        "format": TOKEN_FORMAT, "dtype": dtype.name, "n_tokens": offsets[-1], "n_docs": len(offsets) - 1,
        "vocab_size": int(tokenizer.vocab_size), **(meta or {})})
    logger.info("wrote %s.bin: %d tokens from %d documents", stem, offsets[-1], len(offsets) - 1)
    return TokenFile(stem)


class TokenFile:
    """A written token file (see the module docstring); the ids are memory-mapped on first use."""

    def __init__(self, stem: str | os.PathLike[str]) -> None:
        self.stem = Path(stem)
        meta_path = self.stem.with_suffix(".json")
        if not meta_path.is_file():
            raise FileNotFoundError(f"Token file {self.stem}.bin is missing or incomplete (no {meta_path.name}); "
                                    "it is re-created by preparing the data again.")
        self.meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
        if self.meta.get("format") != TOKEN_FORMAT:
            raise DataError(f"{meta_path} is not an effzoo token file (format {TOKEN_FORMAT!r}).")
        self.dtype = np.dtype(self.meta["dtype"])
        self.n_tokens = int(self.meta["n_tokens"])
        self.vocab_size = int(self.meta["vocab_size"])
        self.offsets = np.load(self.stem.with_suffix(".docs.npy"))
        size = self.stem.with_suffix(".bin").stat().st_size
        if size != self.n_tokens * self.dtype.itemsize or int(self.offsets[-1]) != self.n_tokens:
            raise DataError(f"{self.stem}.bin has {size} bytes but its metadata says {self.n_tokens} "
                            f"{self.dtype.name} ids; delete {self.stem}.* and prepare the data again.")
        self._ids: np.ndarray | None = None

    @property
    def n_docs(self) -> int:
        return len(self.offsets) - 1

    @property
    def ids(self) -> np.ndarray:
        """All ids, memory-mapped read-only (opened lazily: every DataLoader worker maps its own)."""
        if self._ids is None:
            if self.n_tokens == 0:
                self._ids = np.zeros(0, dtype=self.dtype)
            else:
                self._ids = np.memmap(self.stem.with_suffix(".bin"), dtype=self.dtype, mode="r",
                                      shape=(self.n_tokens,))
        return self._ids

    def document(self, d: int) -> np.ndarray:
        return np.asarray(self.ids[self.offsets[d]:self.offsets[d + 1]])

    def chunk_counts(self, seq_len: int) -> np.ndarray:
        """(n_docs,) full T-token chunks per document (the partial last chunk is dropped)."""
        if seq_len <= 0:
            raise ValueError(f"seq_len={seq_len} must be positive.")
        return np.diff(self.offsets) // seq_len

    def __getstate__(self) -> dict[str, Any]:  # never pickle the memmap (DataLoader workers re-open it)
        state = dict(self.__dict__)
        state["_ids"] = None
        return state


class ChunkDataset(Dataset):
    """The T-token chunks of a :class:`TokenFile` as a map-style dataset of int64 ``(T,)`` tensors.

    Args:
        tokens: the token file.
        seq_len: T.
        indices: which chunks (default all), e.g. a fixed validation subset.
    """

    def __init__(self, tokens: TokenFile, seq_len: int, indices: np.ndarray | None = None) -> None:
        self.tokens = tokens
        self.seq_len = seq_len
        counts = tokens.chunk_counts(seq_len)
        self._cum = np.cumsum(counts)  # chunks up to and including each document
        self.n_total = int(self._cum[-1]) if len(self._cum) else 0
        if indices is not None:
            indices = np.asarray(indices, dtype=np.int64)
            if indices.size and (indices.min() < 0 or indices.max() >= self.n_total):
                raise IndexError(f"chunk indices outside [0, {self.n_total})")
        self.indices = indices

    def __len__(self) -> int:
        return self.n_total if self.indices is None else int(self.indices.size)

    def start(self, chunk: int) -> int:
        """Position in the id array of global chunk number ``chunk``."""
        d = int(np.searchsorted(self._cum, chunk, side="right"))
        first = int(self._cum[d - 1]) if d else 0
        return int(self.tokens.offsets[d]) + (chunk - first) * self.seq_len

    def __getitem__(self, i: int) -> torch.Tensor:
        chunk = int(self.indices[i]) if self.indices is not None else int(i)
        if not 0 <= chunk < self.n_total:
            raise IndexError(f"chunk {i} out of range for {len(self)} chunks")
        s = self.start(chunk)
        return torch.from_numpy(np.asarray(self.tokens.ids[s:s + self.seq_len], dtype=np.int64))

    def subset(self, n: int, seed: int = 0) -> ChunkDataset:
        """``n`` chunks drawn without replacement by a fixed-seed permutation (all when n >= len or n <= 0)."""
        base = np.arange(self.n_total) if self.indices is None else self.indices
        if n <= 0 or n >= base.size:
            return ChunkDataset(self.tokens, self.seq_len, base)
        pick = np.sort(np.random.default_rng(seed).permutation(base.size)[:n])
        return ChunkDataset(self.tokens, self.seq_len, base[pick])
