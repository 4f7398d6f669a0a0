"""Corpus -> tokenizer -> token files, prepared once and cached by content, for training and evaluation.

``prepare_lm_data("stdlib", tokenizer="byte")`` loads the corpus, picks or trains the tokenizer, and
writes ``train`` / ``val`` token files into ``CACHE/<corpus fingerprint>-<tokenizer fingerprint>/``.
The fingerprints cover every document's key, size and modification time, the split and the
vocabulary, so a later call with the same inputs reuses the files and any change re-tokenizes. The
default cache is ``$EFFZOO_CACHE/lm`` (else ``~/.cache/effzoo/lm``).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from zoo.eval.corpus import Corpus, select_documents
from zoo.eval.corpus_loader import load_corpus
from zoo.eval.token_file import ChunkDataset, TokenFile, write_token_file
from zoo.eval.tokenizer import BPETokenizer, ByteTokenizer, PretokenizedIds, Tokenizer, train_bpe

from zoo.core.errors import DataError

logger = logging.getLogger(__name__)

TOKENIZER_KINDS = ("byte", "bpe", "pretokenized")


def default_cache_dir() -> Path:
    """``$EFFZOO_CACHE/lm``, else ``$XDG_CACHE_HOME/effzoo/lm``, else ``~/.cache/effzoo/lm``."""
    if os.environ.get("EFFZOO_CACHE"):
        return Path(os.environ["EFFZOO_CACHE"]) / "lm"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "effzoo" / "lm"


@dataclass
class LMData:
    """Token files of one corpus + tokenizer.

    Attributes:
        train, val: the token files of the two splits.
        tokenizer: the tokenizer that wrote them.
        corpus: description of the corpus (name and document counts).
        folder: the cache folder holding the files.
        tokenizer_file: the ``tokenizer.json`` for BPE / file tokenizers, else None.
    """

    train: TokenFile
    val: TokenFile
    tokenizer: Tokenizer
    corpus: str
    folder: Path
    tokenizer_file: Path | None = None

    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.vocab_size)

    def chunks(self, split: str, seq_len: int) -> ChunkDataset:
        """All T-token chunks of ``split`` (``train`` or ``val``)."""
        if split not in ("train", "val"):
            raise ValueError(f"Unknown split {split!r}; use 'train' or 'val'.")
        return ChunkDataset(self.train if split == "train" else self.val, seq_len)


def _select(corpus: Corpus, max_train_docs: int, max_val_docs: int) -> Corpus:
    if not max_train_docs and not max_val_docs:
        return corpus
    splits = {"train": select_documents(corpus.splits["train"], max_train_docs),
              "val": select_documents(corpus.splits["val"], max_val_docs)}
    return Corpus(name=f"{corpus.name}|max{max_train_docs},{max_val_docs}", splits=splits,
                  vocab_size=corpus.vocab_size, root=corpus.root)


def _with_separate_val(train: Corpus, val: Corpus) -> Corpus:
    """All documents of ``train`` for training and all of ``val`` held out (CodeParrot's two datasets)."""
    if (train.vocab_size or 0) != (val.vocab_size or 0):
        raise DataError(f"{train.name} and {val.name} use different vocabularies ({train.vocab_size} vs "
                        f"{val.vocab_size}).")
    return Corpus(name=f"{train.name}+val={val.name}",
                  splits={"train": train.splits["train"] + train.splits["val"],
                          "val": val.splits["train"] + val.splits["val"]},
                  vocab_size=train.vocab_size, root=train.root)


def resolve_tokenizer(spec: str, corpus: Corpus, *, vocab_size: int, folder: Path,
                      progress: bool = True) -> Tokenizer:
    """The tokenizer named by ``spec`` (``byte``, ``bpe``, ``pretokenized`` or a ``tokenizer.json`` path).

    ``bpe`` reuses ``folder/bpe<vocab_size>-<corpus>/tokenizer.json`` when present, else trains it on
    the train split of ``corpus``.
    """
    if corpus.pretokenized:
        if spec not in ("pretokenized", ""):
            raise ValueError(f"{corpus.name} is already tokenized (vocabulary {corpus.vocab_size}); "
                             "set tokenizer: pretokenized.")
        return PretokenizedIds(corpus.vocab_size or 0)
    if spec == "pretokenized":
        raise ValueError(f"tokenizer: pretokenized needs a pre-tokenized corpus (languini:DIR), not {corpus.name}.")
    if spec == "byte":
        if vocab_size not in (0, 256):
            raise ValueError(f"tokenizer: byte has 256 ids but vocab_size={vocab_size} was given; drop vocab_size "
                             "or use tokenizer: bpe.")
        return ByteTokenizer()
    if spec == "bpe":
        if vocab_size <= 0:
            raise ValueError("tokenizer: bpe needs vocab_size (e.g. 4096 for a small model, 50000 like CodeParrot).")
        path = folder / f"bpe{vocab_size}-{corpus.fingerprint()[:16]}" / "tokenizer.json"
        if path.is_file():
            tok = BPETokenizer(path)
            logger.info("reusing BPE vocabulary %s", path)
        else:
            docs = corpus.splits["train"]
            tok = train_bpe((d.read() for d in docs), vocab_size, path, length=len(docs), show_progress=progress)
        return tok
    if spec.endswith(".json") or Path(spec).is_file():
        tok = BPETokenizer(spec)
        if vocab_size and tok.vocab_size != vocab_size:
            raise ValueError(f"{spec} has {tok.vocab_size} ids but vocab_size={vocab_size} was given; drop "
                             "vocab_size or use the matching tokenizer.")
        return tok
    raise ValueError(f"Unknown tokenizer {spec!r}; use one of {', '.join(TOKENIZER_KINDS)} or a tokenizer.json path.")


def prepare_lm_data(data: str = "stdlib", *, tokenizer: str = "byte", vocab_size: int = 0, val_data: str = "",
                    val_fraction: float = 0.02, max_train_docs: int = 0, max_val_docs: int = 0,
                    text_column: str = "", cache_dir: str | os.PathLike[str] | None = None,
                    progress: bool = True) -> LMData:
    """Load a corpus, pick/train its tokenizer and tokenize both splits once (cached).

    Args:
        data: corpus spec (``stdlib``, a folder, ``list:FILE``, ``hf:DIR``, ``languini:DIR``; see
            ``zoo.eval.corpus``).
        tokenizer: ``byte`` | ``bpe`` | ``pretokenized`` | path to a ``tokenizer.json``.
        vocab_size: BPE vocabulary to train (required for ``bpe``).
        val_data: a second corpus used entirely as the held-out split (then ``data`` is all training).
        val_fraction: held-out share of the hash split.
        max_train_docs, max_val_docs: keep at most this many documents (``datasets``' shuffle(seed=0)
            selection); 0 = all.
        text_column: column of ``hf:`` datasets holding the text (default ``content`` or ``text``).
        cache_dir: where token files and trained vocabularies go (default :func:`default_cache_dir`).
        progress: show progress bars (tokenizing, BPE training).

    Raises:
        DataError: a split without documents, an id outside the vocabulary, a missing optional package.
        FileNotFoundError / ValueError: bad specs (one-line messages naming the fix).
    """
    corpus = load_corpus(data, val_fraction=val_fraction, text_column=text_column)
    if val_data:
        corpus = _with_separate_val(corpus, load_corpus(val_data, val_fraction=0.0, text_column=text_column))
    corpus = _select(corpus, max_train_docs, max_val_docs)
    for split in ("train", "val"):
        if not corpus.splits[split]:
            raise DataError(f"{corpus.name} has no {'held-out' if split == 'val' else 'training'} documents "
                            f"({len(corpus.splits['train'])} train / {len(corpus.splits['val'])} held out); use a "
                            "larger corpus, a larger val_fraction, or val_data.")
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    tok = resolve_tokenizer(tokenizer, corpus, vocab_size=vocab_size, folder=cache, progress=progress)
    fingerprint = corpus.fingerprint()
    folder = cache / f"{fingerprint[:16]}-{tok.fingerprint()}"
    files = {}
    for split in ("train", "val"):
        stem = folder / split
        try:
            files[split] = TokenFile(stem)
            continue
        except FileNotFoundError:
            pass
        docs = corpus.splits[split]
        files[split] = write_token_file(stem, (d.read() for d in docs), tok, total=len(docs), progress=progress,
                                        desc=f"tokenizing {split} ({tok.kind})",
                                        meta={"corpus": corpus.name, "corpus_fingerprint": fingerprint,
                                              "split": split, "tokenizer": tok.fingerprint()})
    logger.info("LM data %s: %d train / %d held-out tokens in %s", corpus.describe(), files["train"].n_tokens,
                files["val"].n_tokens, folder)
    return LMData(train=files["train"], val=files["val"], tokenizer=tok, corpus=corpus.describe(), folder=folder,
                  tokenizer_file=getattr(tok, "path", None))
