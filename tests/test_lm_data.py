"""LM data side: the hash split, corpora, tokenizers, token files and T-token chunking."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from zoo.eval.corpus import files_corpus, folder_corpus, select_documents, split_of, stdlib_corpus
from zoo.eval.corpus_loader import load_corpus
from zoo.eval.lm_data import prepare_lm_data, resolve_tokenizer
from zoo.eval.token_file import ChunkDataset, TokenFile, token_dtype, write_token_file
from zoo.eval.tokenizer import ByteTokenizer, PretokenizedIds, train_bpe

from zoo.core.errors import DataError


def _expected_split(key: str, fraction: float) -> str:
    """The documented rule, written independently: first 8 bytes of sha256 as a big-endian integer."""
    head = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    return "val" if int(head, 16) / 2**64 < fraction else "train"


# -- split -----------------------------------------------------------------------------------------------
def test_hash_split_matches_known_assignments():
    keys = [f"pkg{i}/mod.py" for i in range(100)]
    held_out = [k for k in keys if split_of(k, 0.02) == "val"]
    # golden, computed once from sha256 by hand: only these three of the hundred fall below 0.02 * 2**64
    assert held_out == ["pkg39/mod.py", "pkg52/mod.py", "pkg94/mod.py"]
    more = ["os.py", "json/decoder.py", "asyncio/tasks.py", "test/test_grammar.py", "a b/ü.py"]
    more += [f"lib/file_{i}.py" for i in range(400)]
    for fraction in (0.02, 0.1, 0.5):
        assert [split_of(k, fraction) for k in more] == [_expected_split(k, fraction) for k in more]
    assert split_of("anything.py", 0.0) == "train"


def _write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_split_is_stable_across_order_machines_and_added_files(tmp_path):
    files = {f"pkg{i}/mod.py": f"x = {i}\n" * (i + 1) for i in range(100)}
    _write_tree(tmp_path / "a", files)
    first = folder_corpus(tmp_path / "a")
    assert [d.key for d in first.splits["val"]] == ["pkg39/mod.py", "pkg52/mod.py", "pkg94/mod.py"]
    # the same files elsewhere (another machine), plus extra files: nobody moves across the split
    _write_tree(tmp_path / "b" / "nested", {**files, "extra/new.py": "y = 1\n"})
    second = folder_corpus(tmp_path / "b" / "nested")
    assert [d.key for d in second.splits["val"] if d.key != "extra/new.py"] == [d.key for d in first.splits["val"]]
    listed = files_corpus([tmp_path / "a" / k for k in reversed(list(files))])
    assert [d.key for d in listed.splits["val"]] == [d.key for d in first.splits["val"]]


def test_stdlib_corpus_split_is_identical_across_runs_and_excludes_site_packages():
    a, b = stdlib_corpus(), stdlib_corpus()
    assert [d.key for d in a.splits["val"]] == [d.key for d in b.splits["val"]]
    assert a.fingerprint() == b.fingerprint()
    keys = [d.key for s in ("train", "val") for d in a.splits[s]]
    assert not any("site-packages" in k or "__pycache__" in k for k in keys)
    assert all(k.endswith(".py") for k in keys)
    assert "os.py" in keys
    for doc in a.splits["val"][:20] + a.splits["train"][:20]:
        assert _expected_split(doc.key, 0.02) == ("val" if doc in a.splits["val"] else "train")
    n_val = len(a.splits["val"])
    assert 0.005 < n_val / len(keys) < 0.05  # ~2 % of ~1,800 files


def test_corpus_specs_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Corpus 'nope' not found"):
        load_corpus("nope")
    (tmp_path / "one.py").write_text("x = 1\n")
    with pytest.raises(ValueError, match="is a file; use a folder, 'list:"):
        load_corpus(str(tmp_path / "one.py"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no text/code files"):
        load_corpus(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match=r"val_fraction=1.5 must be in \[0, 1\)"):
        load_corpus("stdlib", val_fraction=1.5)


def test_list_file_corpus_reads_relative_paths(tmp_path):
    _write_tree(tmp_path, {"src/a.py": "a = 1\n", "src/b.py": "b = 2\n"})
    (tmp_path / "files.txt").write_text("# my corpus\nsrc/a.py\n\nsrc/b.py\n")
    corpus = load_corpus(f"list:{tmp_path / 'files.txt'}", val_fraction=0.0)
    assert [d.key for d in corpus.splits["train"]] == ["a.py", "b.py"]
    assert corpus.splits["train"][1].read() == b"b = 2\n"


def test_hf_corpus_without_datasets_package_says_what_to_install(tmp_path):
    try:
        import datasets  # noqa: F401
    except ImportError:
        (tmp_path / "ds").mkdir()
        with pytest.raises(DataError, match="needs the optional 'datasets' package"):
            load_corpus(f"hf:{tmp_path / 'ds'}")
        return
    ds = datasets.Dataset.from_dict({"path": [f"f{i}.py" for i in range(60)],
                                     "content": [f"print({i})\n" * 20 for i in range(60)]})
    ds.save_to_disk(str(tmp_path / "ds"))
    corpus = load_corpus(f"hf:{tmp_path / 'ds'}", val_fraction=0.1)
    assert sorted(d.key for s in ("train", "val") for d in corpus.splits[s]) == sorted(f"f{i}.py" for i in range(60))
    assert [d.key for d in corpus.splits["val"]] == sorted(k for k in (f"f{i}.py" for i in range(60))
                                                            if _expected_split(k, 0.1) == "val")


def test_select_documents_uses_the_datasets_shuffle_permutation():
    docs = [f"d{i}" for i in range(10)]
    expected = [docs[i] for i in np.random.default_rng(0).permutation(10)[:4]]
    assert select_documents(docs, 4) == expected  # type: ignore[arg-type]
    assert select_documents(docs, 0) == docs  # type: ignore[arg-type]


# -- tokenizers ------------------------------------------------------------------------------------------
def test_byte_tokenizer_is_utf8_bytes():
    tok = ByteTokenizer()
    ids = tok.encode("é=1")
    assert ids.tolist() == [0xC3, 0xA9, ord("="), ord("1")]
    assert tok.decode(ids) == "é=1" and tok.vocab_size == 256


def test_bpe_is_trained_on_train_split_saved_and_reused(tmp_path):
    import json as json_module
    import textwrap

    real = [Path(m.__file__).read_text(encoding="utf-8") for m in (os, textwrap, json_module, pytest)]
    _write_tree(tmp_path / "corpus", {f"m{i}.py": real[i % 4][i * 50:] for i in range(30)})
    corpus = folder_corpus(tmp_path / "corpus", val_fraction=0.2)
    tok = resolve_tokenizer("bpe", corpus, vocab_size=300, folder=tmp_path / "cache", progress=False)
    assert tok.vocab_size == 300
    assert tok.path.is_file()
    ids = tok.encode("def function_name(arg1):\n")
    assert len(ids) < len("def function_name(arg1):\n")  # merges were learnt
    assert tok.decode(ids) == "def function_name(arg1):\n"
    mtime = tok.path.stat().st_mtime_ns
    again = resolve_tokenizer("bpe", corpus, vocab_size=300, folder=tmp_path / "cache", progress=False)
    assert again.path == tok.path and again.path.stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="too small for byte-level BPE"):
        train_bpe([b"x"], 100, tmp_path / "t.json")


# -- token files and chunks ------------------------------------------------------------------------------
def test_token_file_chunks_per_document_dropping_partial_chunks(tmp_path):
    docs = [bytes(range(10)), b"abc", bytes(range(100, 125))]
    tf = write_token_file(tmp_path / "train", docs, ByteTokenizer(), progress=False)
    assert tf.dtype == np.uint16 and tf.n_tokens == 38 and tf.n_docs == 3
    assert (tmp_path / "train.bin").stat().st_size == 38 * 2
    chunks = ChunkDataset(tf, 4)
    assert len(chunks) == 2 + 0 + 6  # floor(10/4) + floor(3/4) + floor(25/4)
    assert chunks[0].tolist() == [0, 1, 2, 3] and chunks[1].tolist() == [4, 5, 6, 7]
    assert chunks[2].tolist() == [100, 101, 102, 103] and chunks[7].tolist() == [120, 121, 122, 123]
    with pytest.raises(IndexError):
        chunks[8]
    sub = chunks.subset(3, seed=0)
    assert len(sub) == 3 and all(any(sub[i].tolist() == chunks[j].tolist() for j in range(8)) for i in range(3))
    assert len(ChunkDataset(tf, 30)) == 0


def test_token_file_dtype_follows_vocabulary_and_rejects_out_of_range_ids(tmp_path):
    assert token_dtype(256) == np.uint16 and token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32
    big = write_token_file(tmp_path / "big", [np.array([0, 70000, 5])], PretokenizedIds(70001), progress=False)
    assert big.dtype == np.uint32 and big.document(0).tolist() == [0, 70000, 5]
    with pytest.raises(DataError, match="outside the vocabulary"):
        write_token_file(tmp_path / "bad", [np.array([3, 9])], PretokenizedIds(8), progress=False)
    assert not (tmp_path / "bad.json").exists() and not (tmp_path / "bad.bin").exists()


def test_incomplete_token_file_is_not_used(tmp_path):
    write_token_file(tmp_path / "t", [b"hello world"], ByteTokenizer(), progress=False)
    (tmp_path / "t.json").unlink()  # as if killed before the metadata (the commit point) was written
    with pytest.raises(FileNotFoundError, match="missing or incomplete"):
        TokenFile(tmp_path / "t")


def test_prepare_lm_data_caches_token_files(tmp_path):
    _write_tree(tmp_path / "c", {f"pkg{i}/mod.py": f"value_{i} = {i}\n" * 30 for i in range(100)})
    data = prepare_lm_data(str(tmp_path / "c"), cache_dir=tmp_path / "cache", progress=False)
    held = sorted(f"pkg{i}/mod.py" for i in (39, 52, 94))
    expected_val = sum(len((tmp_path / "c" / k).read_bytes()) for k in held)
    assert data.val.n_tokens == expected_val and data.val.n_docs == 3
    assert data.train.n_docs == 97 and data.vocab_size == 256
    stamp = (data.folder / "train.bin").stat().st_mtime_ns
    again = prepare_lm_data(str(tmp_path / "c"), cache_dir=tmp_path / "cache", progress=False)
    assert again.folder == data.folder and (again.folder / "train.bin").stat().st_mtime_ns == stamp
    os.utime(tmp_path / "c" / "pkg1" / "mod.py", ns=(1, 1))  # a changed file changes the fingerprint
    assert prepare_lm_data(str(tmp_path / "c"), cache_dir=tmp_path / "cache", progress=False).folder != data.folder


def test_languini_loader_reads_pretokenized_books(tmp_path):
    root = tmp_path / "books"
    files = root / "books_16384" / "files"
    files.mkdir(parents=True)
    rng = np.random.default_rng(0)
    books = {name: rng.integers(0, 16384, size=n).astype(np.uint16) for name, n in
             (("alpha", 1100), ("beta", 700), ("gamma", 530))}
    for name, ids in books.items():
        np.save(files / f"{name}.npy", ids)
    np.save(root / "file_list_train.npy", np.array([["files/alpha.npy", "1100"], ["files/beta.npy", "700"]]))
    np.save(root / "file_list_test_iid.npy", np.array([["gamma.txt", "530"]]))  # raw book name -> files/gamma.npy
    with pytest.raises(ValueError, match="already tokenized"):
        prepare_lm_data(f"languini:{root / 'books_16384'}", tokenizer="byte", cache_dir=tmp_path / "cache")
    data = prepare_lm_data(f"languini:{root / 'books_16384'}", tokenizer="pretokenized",
                           cache_dir=tmp_path / "cache", progress=False)
    assert data.vocab_size == 16384 and data.train.n_tokens == 1800 and data.val.n_tokens == 530
    val = data.chunks("val", 512)
    assert len(val) == 1 and val[0].tolist() == books["gamma"][:512].astype(int).tolist()
    assert len(data.chunks("train", 512)) == 2 + 1
