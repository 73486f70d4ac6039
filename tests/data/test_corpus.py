"""Tests for lenscope.data.corpus: default stdlib corpus, user files, and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lenscope.data.corpus as corpus
from lenscope.data.corpus import CorpusStats, Document, default_corpus_root, iter_documents
from lenscope.errors import CorpusError, InputError, LenscopeError


def test_default_root_is_stdlib() -> None:
    root = default_corpus_root()
    assert (root / "os.py").is_file()
    assert (root / "json" / "__init__.py").is_file()


def test_default_corpus_yields_real_stdlib_files() -> None:
    root = default_corpus_root()
    stats = CorpusStats()
    docs = list(iter_documents(limit_bytes=200_000, stats=stats))
    assert docs
    names = [d.name for d in docs]
    assert names == sorted(names)
    for d in docs:
        assert d.name.endswith(".py")
        assert d.text == (root / d.name).read_text(encoding="utf-8")
    sizes = [len(d.text.encode()) for d in docs]
    assert sum(sizes) >= 200_000 > sum(sizes[:-1])
    assert stats.documents == len(docs)
    assert stats.text_bytes == sum(sizes)


def test_default_corpus_file_listing() -> None:
    root = default_corpus_root()
    with_tests = [rel for _, rel in corpus._walk(root, (".py",), True)]
    without = [rel for _, rel in corpus._walk(root, (".py",), False)]
    assert "os.py" in with_tests and "os.py" in without
    assert any(rel.startswith("test/") for rel in with_tests)
    assert not any(set(rel.split("/")) & {"test", "tests", "idle_test"} for rel in without)
    assert not any("site-packages" in rel for rel in with_tests)
    expected = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*.py")
        if not set(p.relative_to(root).parts[:-1])
        & {"site-packages", "dist-packages", "__pycache__"}
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    assert with_tests == expected


def test_default_corpus_skips_and_counts_non_utf8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.py").write_text("x = 1\n", encoding="utf-8")
    (tmp_path / "b_latin1.py").write_bytes("# coding: latin-1\ns = 'café'\n".encode("latin-1"))
    (tmp_path / "c_empty.py").write_text("", encoding="utf-8")
    (tmp_path / "site-packages").mkdir()
    (tmp_path / "site-packages" / "pkg.py").write_text("skip = True\n", encoding="utf-8")
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "test_a.py").write_text("assert True\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not python\n", encoding="utf-8")
    monkeypatch.setattr(corpus, "default_corpus_root", lambda: tmp_path)

    stats = CorpusStats()
    docs = list(iter_documents(stats=stats))
    assert docs == [Document("a.py", "x = 1\n"), Document("test/test_a.py", "assert True\n")]
    assert stats.skipped_non_utf8 == 1
    assert stats.skipped_files == ["b_latin1.py"]
    assert [d.name for d in iter_documents(include_tests=False)] == ["a.py"]


def test_user_files_of_every_kind(tmp_path: Path) -> None:
    texts = {
        "a.py": "def f():\n    return 'ü'\r\n",
        "b.txt": "plain text ✓",
        "c.md": "# Title\n\nbody",
        "d.rst": "Heading\n=======\n",
    }
    for name, text in texts.items():
        (tmp_path / name).write_bytes(text.encode("utf-8"))
    jl = tmp_path / "e.jsonl"
    jl.write_text(
        json.dumps({"text": "first 日本"})
        + "\n\n"
        + json.dumps({"text": "second", "id": 2})
        + "\n",
        encoding="utf-8",
    )
    pq.write_table(pa.table({"text": ["row zero", "row one"], "n": [0, 1]}), tmp_path / "f.parquet")
    (tmp_path / "ignored.csv").write_text("a,b\n", encoding="utf-8")

    given = [tmp_path / name for name in texts] + [jl, tmp_path / "f.parquet"]
    docs = list(iter_documents(given))
    expected = [Document(p.as_posix(), t) for p, t in zip(given, texts.values(), strict=False)]
    expected += [
        Document(f"{jl.as_posix()}:1", "first 日本"),
        Document(f"{jl.as_posix()}:3", "second"),
        Document(f"{(tmp_path / 'f.parquet').as_posix()}:0", "row zero"),
        Document(f"{(tmp_path / 'f.parquet').as_posix()}:1", "row one"),
    ]
    assert docs == expected

    # the same files through the directory: sorted, unsupported files ignored
    from_dir = list(iter_documents([str(tmp_path)]))
    assert [d.text for d in from_dir] == [d.text for d in expected]
    assert from_dir[0].name == f"{tmp_path.as_posix()}/a.py"


def test_directory_walk_skips_tests_when_asked(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.txt").write_text("in tests", encoding="utf-8")
    (tmp_path / "main.txt").write_text("main", encoding="utf-8")
    assert [d.text for d in iter_documents([tmp_path])] == ["main", "in tests"]
    assert [d.text for d in iter_documents([tmp_path], include_tests=False)] == ["main"]


def test_limit_bytes_counts_whole_documents(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"{i}.txt").write_text("é" * 10, encoding="utf-8")  # 20 bytes each
    assert len(list(iter_documents([tmp_path], limit_bytes=40))) == 2
    assert len(list(iter_documents([tmp_path], limit_bytes=41))) == 3
    with pytest.raises(InputError, match="limit_bytes"):
        list(iter_documents([tmp_path], limit_bytes=0))


def test_non_utf8_user_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\xff\xfe rest")
    with pytest.raises(CorpusError) as e:
        list(iter_documents([bad]))
    msg = str(e.value)
    assert "bad.txt" in msg and "offset 2" in msg and "UTF-8" in msg and "convert" in msg
    assert "\n" not in msg


def test_non_utf8_jsonl_line_reports_file_offset(tmp_path: Path) -> None:
    f = tmp_path / "c.jsonl"
    f.write_bytes(b'{"text": "a"}\n{"text": "\xff"}\n')
    with pytest.raises(CorpusError, match=r"c\.jsonl:2 .*offset 24"):
        list(iter_documents([f]))


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("not json", "not valid JSON"),
        ('{"body": "x"}', '"text"'),
        ('{"text": 3}', '"text"'),
        ('["text"]', '"text"'),
        ('{"text": "\\ud800"}', "surrogate"),
    ],
)
def test_bad_jsonl_line(tmp_path: Path, line: str, why: str) -> None:
    f = tmp_path / "c.jsonl"
    f.write_text('{"text": "fine"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(CorpusError) as e:
        list(iter_documents([f]))
    assert "c.jsonl:2" in str(e.value) and why in str(e.value)


def test_bad_parquet(tmp_path: Path) -> None:
    no_text = tmp_path / "a.parquet"
    pq.write_table(pa.table({"body": ["x"]}), no_text)
    with pytest.raises(CorpusError, match=r'no column "text".*body'):
        list(iter_documents([no_text]))
    wrong_type = tmp_path / "b.parquet"
    pq.write_table(pa.table({"text": [1, 2]}), wrong_type)
    with pytest.raises(CorpusError, match="not string"):
        list(iter_documents([wrong_type]))
    nulls = tmp_path / "c.parquet"
    pq.write_table(pa.table({"text": ["x", None]}), nulls)
    with pytest.raises(CorpusError, match=r"c\.parquet:1 has a null"):
        list(iter_documents([nulls]))
    garbage = tmp_path / "d.parquet"
    garbage.write_bytes(b"this is not parquet")
    with pytest.raises(CorpusError, match="not a readable Parquet"):
        list(iter_documents([garbage]))


def test_missing_path_and_unsupported_extension(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        list(iter_documents([tmp_path / "nope.txt"]))
    csv = tmp_path / "x.csv"
    csv.write_text("a,b", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"unsupported file type '\.csv'.*\.jsonl"):
        list(iter_documents([csv]))
    with pytest.raises(InputError, match="list"):
        list(iter_documents(str(csv)))


def test_empty_corpus(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no documents found"):
        list(iter_documents([tmp_path]))
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    (tmp_path / "blank.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="no documents found"):
        list(iter_documents([tmp_path]))


def test_errors_are_lenscope_errors() -> None:
    assert issubclass(CorpusError, LenscopeError) and issubclass(InputError, LenscopeError)
