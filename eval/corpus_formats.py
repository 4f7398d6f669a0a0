"""Corpora stored in other projects' formats: Hugging Face ``datasets`` folders and Languini books.

These are the data of the paper-scale recipes (spec pi_transformer.md §9.1). Nothing is downloaded: the
user prepares the folders once with the other project's own tools, and effzoo reads them from disk.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
from zoo.eval.corpus import VAL_SPLITS_HF, Corpus, Document, check_val_fraction, split_of

from zoo.core.errors import DataError

logger = logging.getLogger(__name__)

TEXT_COLUMNS = ("content", "text")  # CodeParrot's column, then the common default


def _row_reader(ds, index: int, column: str):
    def read() -> bytes:
        value = ds[index][column]
        return (value or "").encode("utf-8")
    return read


def _text_column(ds, text_column: str, where: str) -> str:
    names = list(ds.column_names)
    if text_column:
        if text_column not in names:
            raise DataError(f"{where} has no column {text_column!r}; its columns are {', '.join(names)}.")
        return text_column
    for name in TEXT_COLUMNS:
        if name in names:
            return name
    raise DataError(f"{where} has no 'content' or 'text' column (columns: {', '.join(names)}); "
                    "set text_column to the one holding the documents.")


def _row_keys(ds, prefix: str) -> list[str]:
    names = set(ds.column_names)
    if "path" in names:
        paths = ds["path"]
        repos = ds["repo_name"] if "repo_name" in names else [""] * len(paths)
        keys = [f"{r}/{p}" if r else str(p) for r, p in zip(repos, paths)]
        if len(set(keys)) == len(keys):
            return keys
        logger.info("%s: 'path' values repeat; splitting by row index instead", prefix)
    return [f"{prefix}{i}" for i in range(len(ds))]


def hf_disk_corpus(folder: str | os.PathLike[str], val_fraction: float = 0.02, *, text_column: str = "") -> Corpus:
    """A ``datasets.save_to_disk`` folder (``Dataset`` or ``DatasetDict``) as a corpus.

    A ``DatasetDict`` must have a ``train`` split; its held-out split is the first of ``validation``,
    ``valid``, ``val``, ``test`` present (none: ``train`` is hash-split). A plain ``Dataset`` is hash-split
    by its ``repo_name/path`` (CodeParrot) or row index.

    Raises:
        DataError: ``datasets`` is not installed, or the folder has no usable text column / train split.
        FileNotFoundError: no such folder.
    """
    check_val_fraction(val_fraction)
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"Dataset folder not found: {path}")
    try:
        import datasets
    except ImportError as err:
        raise DataError("Reading 'hf:' corpora needs the optional 'datasets' package (pip install datasets); "
                        "or export the documents to a folder of text files and pass that folder.") from err
    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as err:
        raise DataError(f"{path} is not a datasets.save_to_disk folder ({err}).") from err
    fingerprint = ""
    splits: dict[str, list[Document]] = {"train": [], "val": []}
    if isinstance(loaded, datasets.DatasetDict) and "train" not in loaded and len(loaded) == 1:
        loaded = next(iter(loaded.values()))  # e.g. codeparrot-ds-valid: one "validation" split
    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded:
            raise DataError(f"{path} holds splits {', '.join(loaded)} but no 'train' split.")
        val_name = next((s for s in VAL_SPLITS_HF if s in loaded), None)
        parts = [("train", loaded["train"])] + ([("val", loaded[val_name])] if val_name else [])
        for split, ds in parts:
            col = _text_column(ds, text_column, f"{path} [{split}]")
            keys = _row_keys(ds, f"{split}/")
            fingerprint += getattr(ds, "_fingerprint", "") or ""
            docs = [Document(key=k, read=_row_reader(ds, i, col), stamp=str(i)) for i, k in enumerate(keys)]
            if val_name is None:
                for doc in docs:
                    splits[split_of(doc.key, val_fraction)].append(doc)
            else:
                splits[split] = docs
    else:
        col = _text_column(loaded, text_column, str(path))
        fingerprint = getattr(loaded, "_fingerprint", "") or ""
        for i, k in enumerate(_row_keys(loaded, "")):
            splits[split_of(k, val_fraction)].append(Document(key=k, read=_row_reader(loaded, i, col), stamp=str(i)))
    for split in splits:
        splits[split].sort(key=lambda d: d.key)
    if not splits["train"]:
        raise DataError(f"{path} holds no training documents.")
    return Corpus(name=f"hf:{path}@{fingerprint}", splits=splits, root=str(path))


LANGUINI_LISTS = {"train": "file_list_train.npy", "val": "file_list_test_iid.npy"}


def _languini_vocab(folder: Path) -> int:
    match = re.search(r"(\d+)$", folder.name)  # books_16384
    return int(match.group(1)) if match else 16384


def _languini_file(folder: Path, entry: str) -> Path:
    direct = folder / entry
    if direct.is_file():
        return direct
    guess = folder / "files" / (Path(entry).stem + ".npy")  # the tokeniser writes files/<book name>.npy
    if guess.is_file():
        return guess
    raise FileNotFoundError(f"Languini book {entry!r} not found as {direct} or {guess}; re-run Languini's "
                            "tokenise_languini_books.py for this vocabulary.")


def _npy_reader(path: Path):
    def read() -> np.ndarray:
        return np.load(path, mmap_mode="r")
    return read


def languini_corpus(folder: str | os.PathLike[str]) -> Corpus:
    """A Languini Kitchen books folder (``.../books/books_16384``): pre-tokenized books, fixed splits.

    The train split is ``file_list_train.npy`` and the held-out split ``file_list_test_iid.npy`` (the
    Languini "test" split the paper reports), both in the folder's parent, as Languini's own
    ``LanguiniDatasetIterator`` reads them. Each list row is (book file, token count).
    """
    path = Path(folder)
    if not (path / "files").is_dir():
        raise FileNotFoundError(f"{path} is not a Languini books folder (expected {path / 'files'}/*.npy, e.g. "
                                "data/books/books_16384).")
    splits: dict[str, list[Document]] = {}
    for split, list_name in LANGUINI_LISTS.items():
        list_path = path.parent / list_name
        if not list_path.is_file():
            raise FileNotFoundError(f"Languini file list not found: {list_path}")
        rows = np.load(list_path, allow_pickle=False)
        docs = []
        for row in np.atleast_2d(rows):
            book = _languini_file(path, str(row[0]))
            st = book.stat()
            docs.append(Document(key=book.relative_to(path).as_posix(), read=_npy_reader(book),
                                 stamp=f"{st.st_size}:{st.st_mtime_ns}"))
        splits[split] = sorted(docs, key=lambda d: d.key)
    if not splits["train"]:
        raise DataError(f"{path.parent / LANGUINI_LISTS['train']} lists no books.")
    return Corpus(name=f"languini:{path}", splits=splits, vocab_size=_languini_vocab(path), root=str(path))
