"""Text corpora for language modelling, split into train / held-out documents deterministically.

A corpus is a list of documents, each with a *key* (a POSIX relative path, or a row key) and a way to
read its bytes. The train / validation split is a pure function of the key (:func:`split_of`): the
first 8 bytes of ``sha256(key)`` read as a big-endian fraction of 2**64, held out when below
``val_fraction``. So the split does not depend on file order, on the machine, on Python's salted
``hash()`` or on which other files exist -- adding a file never moves another one across the split.

Sources (``zoo.eval.corpus_loader.load_corpus(spec)``):

* ``"stdlib"`` -- the ``.py`` files of the running interpreter's standard library
  (``sysconfig.get_paths()["stdlib"]``), a real-code corpus every machine already has, like the
  paper's CodeParrot set (spec pi_transformer.md §9.2). ``site-packages`` / ``dist-packages`` (third-
  party code that differs between machines) and ``__pycache__`` are left out; the ``test`` packages are
  kept (they are ordinary Python code and more than half the corpus: 1,790 files / 31.5 MB on 3.11,
  the "about 1,800 files, 34 MB with its tests" of the spec).
* a folder: every text/code file below it (suffixes in :data:`TEXT_SUFFIXES`), keys relative to it;
* ``"list:FILE"``: the files named one per line in FILE (relative lines are relative to FILE's folder);
  keys are relative to the files' common folder;
* ``"hf:DIR"``: a dataset written by Hugging Face ``datasets`` ``save_to_disk`` (needs the optional
  ``datasets`` package). A ``DatasetDict`` keeps its own ``train`` / ``validation`` splits (the
  CodeParrot recipe); a single ``Dataset`` is split by the hash of its ``path`` column (row index when
  there is none). The text column is ``content`` (CodeParrot) or ``text`` unless given.
* ``"languini:DIR"``: a Languini Kitchen books folder (``DIR/files/*.npy`` pre-tokenized books with the
  16,384-piece vocabulary and ``file_list_train.npy`` / ``file_list_test_iid.npy`` one level up).
"""
from __future__ import annotations

import hashlib
import logging
import os
import sysconfig
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo.core.errors import DataError

logger = logging.getLogger(__name__)

SPLITS = ("train", "val")
TEXT_SUFFIXES = (".py", ".pyi", ".txt", ".md", ".rst", ".c", ".h", ".cc", ".cpp", ".hpp", ".js", ".ts", ".java",
                 ".go", ".rs", ".json", ".toml", ".cfg", ".ini", ".yaml", ".yml", ".sh", ".html", ".css", ".tex")
STDLIB_EXCLUDED_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__"})
VAL_SPLITS_HF = ("validation", "valid", "val", "test")


def split_of(key: str, val_fraction: float = 0.02) -> str:
    """``"val"`` or ``"train"`` for a document key: sha256(key) as a fraction of 2**64 < val_fraction -> val.

    Args:
        key: the document's POSIX relative path (or row key); encoded as UTF-8.
        val_fraction: share of documents held out, in [0, 1).
    """
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return "val" if int.from_bytes(digest[:8], "big") < val_fraction * 2**64 else "train"


@dataclass(frozen=True)
class Document:
    """One document: its split key and a reader for its content.

    ``read()`` returns ``bytes`` (text, UTF-8) or, for pre-tokenized corpora, a 1-D integer ``np.ndarray``.
    ``stamp`` is cheap provenance (size, mtime) used to fingerprint the corpus for caching.
    """

    key: str
    read: Callable[[], bytes | np.ndarray] = field(compare=False, repr=False)
    stamp: str = ""


@dataclass
class Corpus:
    """Documents of a corpus, already assigned to ``train`` and ``val``.

    Attributes:
        name: the spec it was loaded from (``stdlib``, a folder, ``hf:...``).
        splits: ``{"train": [...], "val": [...]}``, each sorted by key.
        vocab_size: for pre-tokenized corpora the vocabulary of the stored ids, else None (text).
        root: where the documents live (for messages).
    """

    name: str
    splits: dict[str, list[Document]]
    vocab_size: int | None = None
    root: str = ""

    @property
    def pretokenized(self) -> bool:
        return self.vocab_size is not None

    def documents(self, split: str) -> list[Document]:
        if split not in self.splits:
            raise ValueError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
        return self.splits[split]

    def fingerprint(self) -> str:
        """sha256 over the name, the split assignment and each document's stamp (what the cache keys on)."""
        h = hashlib.sha256(f"{self.name}|{self.vocab_size}".encode())
        for split in SPLITS:
            for doc in self.splits.get(split, []):
                h.update(f"{split}\0{doc.key}\0{doc.stamp}\n".encode())
        return h.hexdigest()

    def describe(self) -> str:
        return f"{self.name} ({len(self.splits['train'])} train / {len(self.splits['val'])} held-out documents)"


def _file_document(path: Path, key: str) -> Document:
    st = path.stat()
    return Document(key=key, read=path.read_bytes, stamp=f"{st.st_size}:{st.st_mtime_ns}")


def _split_documents(docs: Sequence[Document], val_fraction: float) -> dict[str, list[Document]]:
    out: dict[str, list[Document]] = {"train": [], "val": []}
    for doc in sorted(docs, key=lambda d: d.key):
        out[split_of(doc.key, val_fraction)].append(doc)
    return out


def check_val_fraction(val_fraction: float) -> None:
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction!r} must be in [0, 1) (default 0.02: 98 % / 2 %).")


def stdlib_root() -> Path:
    """The running interpreter's standard-library folder."""
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_corpus(val_fraction: float = 0.02, *, root: str | os.PathLike[str] | None = None) -> Corpus:
    """The ``.py`` files of the standard library (see the module docstring for what is excluded and why)."""
    check_val_fraction(val_fraction)
    base = Path(root) if root is not None else stdlib_root()
    docs = []
    for path in base.rglob("*.py"):
        rel = path.relative_to(base)
        if STDLIB_EXCLUDED_DIRS.intersection(rel.parts) or not path.is_file():
            continue
        docs.append(_file_document(path, rel.as_posix()))
    if not docs:
        raise DataError(f"No .py files under the standard library folder {base}; pass a corpus folder instead.")
    return Corpus(name="stdlib", splits=_split_documents(docs, val_fraction), root=str(base))


def folder_corpus(folder: str | os.PathLike[str], val_fraction: float = 0.02, *,
                  suffixes: Sequence[str] = TEXT_SUFFIXES) -> Corpus:
    """Every text/code file below ``folder`` (hidden folders skipped), keys relative to ``folder``."""
    check_val_fraction(val_fraction)
    base = Path(folder)
    if not base.is_dir():
        raise FileNotFoundError(f"Corpus folder not found: {base}")
    docs = []
    for path in base.rglob("*"):
        rel = path.relative_to(base)
        if path.suffix.lower() in suffixes and path.is_file() and not any(p.startswith(".") for p in rel.parts):
            docs.append(_file_document(path, rel.as_posix()))
    if not docs:
        raise DataError(f"Corpus folder {base} holds no text/code files ({', '.join(suffixes)}); "
                        "give a folder of text files as the corpus.")
    return Corpus(name=f"folder:{base}", splits=_split_documents(docs, val_fraction), root=str(base))


def files_corpus(files: Sequence[str | os.PathLike[str]], val_fraction: float = 0.02, *, name: str = "") -> Corpus:
    """The given files; keys are their paths relative to the files' common folder."""
    check_val_fraction(val_fraction)
    paths = [Path(f).resolve() for f in files]
    if not paths:
        raise DataError("The corpus file list is empty; give at least one text file.")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"Corpus file not found: {missing[0]}" +
                                (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    common = Path(os.path.commonpath([str(p.parent) for p in paths]))
    docs = [_file_document(p, p.relative_to(common).as_posix()) for p in paths]
    keys = [d.key for d in docs]
    if len(set(keys)) != len(keys):
        raise DataError("The corpus file list names the same file twice; list each file once.")
    return Corpus(name=name or f"files:{common}", splits=_split_documents(docs, val_fraction), root=str(common))


def list_file_corpus(list_file: str | os.PathLike[str], val_fraction: float = 0.02) -> Corpus:
    """``list:FILE``: one path per line (blank lines and ``#`` comments ignored)."""
    path = Path(list_file)
    if not path.is_file():
        raise FileNotFoundError(f"Corpus file list not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:  # name the file, not just the codec
        raise DataError(f"{path}: corpus file list is not UTF-8 text (byte {err.start}: {err.reason}); save it as "
                        "UTF-8.") from err
    lines = [ln.strip() for ln in text.splitlines()]
    files = [(path.parent / ln) if not os.path.isabs(ln) else Path(ln) for ln in lines if ln and not ln.startswith("#")]
    return files_corpus(files, val_fraction, name=f"list:{path}")


def select_documents(docs: list[Document], limit: int, seed: int = 0) -> list[Document]:
    """At most ``limit`` documents: ``datasets``' ``shuffle(seed).select(range(limit))`` order (0 = all).

    ``numpy.random.default_rng(seed).permutation`` is the permutation ``datasets.Dataset.shuffle`` uses, so
    the CodeParrot recipe's "600,000 files, shuffle seed 0" selects the same files as the reference.
    """
    if limit <= 0 or limit >= len(docs):
        return docs
    order = np.random.default_rng(seed).permutation(len(docs))[:limit]
    return [docs[i] for i in order]
