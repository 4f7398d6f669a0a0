"""``load_corpus(spec)``: a corpus spec string (or a list of files) -> the right reader.

The readers live in :mod:`zoo.eval.corpus` (local text: the standard library, folders, file lists) and
:mod:`zoo.eval.corpus_formats` (Hugging Face ``datasets`` folders, Languini books); this module is the one
place that knows every spec form, so neither reader module imports the other.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from zoo.eval.corpus import Corpus, files_corpus, folder_corpus, list_file_corpus, stdlib_corpus
from zoo.eval.corpus_formats import hf_disk_corpus, languini_corpus


def load_corpus(spec: str | Sequence[str | os.PathLike[str]] = "stdlib", *, val_fraction: float = 0.02,
                text_column: str = "") -> Corpus:
    """A corpus from a spec string (``stdlib``, a folder, ``list:FILE``, ``hf:DIR``, ``languini:DIR``) or a
    list of file paths. See the module docstring.

    Raises:
        FileNotFoundError: the folder / list / dataset does not exist.
        DataError: the source holds no usable documents, or an optional package is missing.
    """
    if not isinstance(spec, str):
        return files_corpus(list(spec), val_fraction)
    if spec in ("", "stdlib"):
        return stdlib_corpus(val_fraction)
    if spec.startswith("list:"):
        return list_file_corpus(spec[5:], val_fraction)
    if spec.startswith("hf:"):
        return hf_disk_corpus(spec[3:], val_fraction, text_column=text_column)
    if spec.startswith("languini:"):
        return languini_corpus(spec[9:])
    if Path(spec).is_dir():
        return folder_corpus(spec, val_fraction)
    if Path(spec).is_file():
        raise ValueError(f"Corpus {spec!r} is a file; use a folder, 'list:{spec}' for a file listing paths, "
                         "or 'stdlib'.")
    raise FileNotFoundError(f"Corpus {spec!r} not found: use 'stdlib', a folder of text files, 'list:FILE', "
                            "'hf:DIR' (datasets save_to_disk) or 'languini:DIR'.")


