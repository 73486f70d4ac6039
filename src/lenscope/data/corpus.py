"""Corpora: turn the default corpus or the user's files into a stream of `Document`s.

The default corpus is the running Python's standard library source (`*.py` under
`sysconfig.get_paths()["stdlib"]`, `site-packages` skipped), present on every machine. Its few
files that are not valid UTF-8 (some test fixtures) are skipped and counted in a `CorpusStats`
the caller may pass in. User paths may be files or directories of `.py`, `.txt`, `.md`, `.rst`
(one document per file), `.jsonl` (one document per line, field "text") and `.parquet` (column
"text"); anything wrong with a user file is a `CorpusError` naming the file (and line or row).

Iteration is deterministic: files are visited sorted by their path below the root; documents with
empty text are skipped. Document names are stable identifiers (path relative to the stdlib root for the default
corpus; the path as given, joined with the path below it for directories; `file:line` for jsonl and
`file:row` for parquet) and decide the train/val split downstream.
"""

from __future__ import annotations

import json
import os
import sysconfig
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lenscope.errors import CorpusError, InputError

WHOLE_FILE_SUFFIXES = (".py", ".txt", ".md", ".rst")
SUPPORTED_SUFFIXES = (*WHOLE_FILE_SUFFIXES, ".jsonl", ".parquet")
TEST_DIR_NAMES = frozenset({"test", "tests", "idle_test"})
SKIPPED_DIR_NAMES = frozenset({"site-packages", "dist-packages", "__pycache__"})


@dataclass(frozen=True)
class Document:
    """One text document; `name` is a stable identifier (used for the train/val split)."""

    name: str
    text: str


@dataclass
class CorpusStats:
    """Counts filled in while `iter_documents` runs (pass one in as `stats=`).

    `skipped_files` lists default-corpus files left out (not UTF-8, or unreadable), relative to
    the stdlib root; `skipped_non_utf8` counts those that were not valid UTF-8.
    """

    documents: int = 0
    text_bytes: int = 0
    skipped_non_utf8: int = 0
    skipped_files: list[str] = field(default_factory=list)


def default_corpus_root() -> Path:
    """The running Python's standard library source directory (the embedded default corpus)."""
    return Path(sysconfig.get_paths()["stdlib"])


def iter_documents(
    paths: Sequence[Path | str] | None = None,
    *,
    include_tests: bool = True,
    limit_bytes: int | None = None,
    stats: CorpusStats | None = None,
) -> Iterator[Document]:
    """Yield the documents of `paths` (None: the standard library's `*.py` files).

    `include_tests=False` skips directories named `test`, `tests` or `idle_test` below a directory
    root. `limit_bytes` stops once at least that many UTF-8 bytes of text have been yielded (whole
    documents only; the last one may cross the limit). `stats`, if given, is updated in place.
    Raises `CorpusError` for a missing path, an unsupported file, an unreadable user file, or when
    no document at all is found.
    """
    if limit_bytes is not None and limit_bytes <= 0:
        raise InputError(f"limit_bytes must be a positive number of bytes, got {limit_bytes}")
    st = stats if stats is not None else CorpusStats()
    count = total = 0
    for doc in _iter_all(paths, include_tests, st):
        size = len(doc.text.encode("utf-8"))
        count += 1
        total += size
        st.documents += 1
        st.text_bytes += size
        yield doc
        if limit_bytes is not None and total >= limit_bytes:
            return
    if count == 0:
        where = "the default corpus" if paths is None else ", ".join(str(p) for p in paths)
        raise CorpusError(
            f"no documents found in {where}; give files or directories holding non-empty "
            f"{', '.join(SUPPORTED_SUFFIXES)} files"
        )


def _iter_all(
    paths: Sequence[Path | str] | None, include_tests: bool, st: CorpusStats
) -> Iterator[Document]:
    if paths is None:
        yield from _iter_default(include_tests, st)
        return
    if isinstance(paths, str | Path):
        raise InputError("paths must be a list of files or directories, not a single path")
    for given in paths:
        p = Path(given)
        if p.is_dir():
            for f, rel in _walk(p, SUPPORTED_SUFFIXES, include_tests):
                yield from _iter_file(f, f"{Path(given).as_posix()}/{rel}")
        elif p.is_file():
            if p.suffix.lower() not in SUPPORTED_SUFFIXES:
                raise CorpusError(
                    f"{p}: unsupported file type {p.suffix or '(none)'!r}; "
                    f"use one of {', '.join(SUPPORTED_SUFFIXES)}"
                )
            yield from _iter_file(p, p.as_posix())
        else:
            raise CorpusError(f"{p} does not exist; give an existing file or directory")


def _iter_default(include_tests: bool, st: CorpusStats) -> Iterator[Document]:
    root = default_corpus_root()
    if not root.is_dir():
        raise CorpusError(f"standard library source not found at {root}; give corpus paths")
    for f, rel in _walk(root, (".py",), include_tests):
        try:
            text = f.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            st.skipped_non_utf8 += 1
            st.skipped_files.append(rel)
            continue
        except OSError:  # e.g. a dangling symlink in a distribution's stdlib
            st.skipped_files.append(rel)
            continue
        if text:
            yield Document(rel, text)


def _walk(root: Path, suffixes: tuple[str, ...], include_tests: bool) -> list[tuple[Path, str]]:
    """Files under `root` with one of `suffixes` as (path, posix path relative to root), sorted."""
    found: list[tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [
            d
            for d in dirnames
            if d not in SKIPPED_DIR_NAMES
            and not d.startswith(".")
            and (include_tests or d not in TEST_DIR_NAMES)
        ]
        base = Path(dirpath)
        for name in filenames:
            if name.startswith(".") or not name.lower().endswith(suffixes):
                continue
            f = base / name
            found.append((f, f.relative_to(root).as_posix()))
    found.sort(key=lambda item: item[1])
    return found


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(
            f"{where} is not valid UTF-8 (bad byte at offset {e.start}); "
            "convert it to UTF-8, e.g. `iconv -f latin1 -t utf-8`"
        ) from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise CorpusError(f"{path} cannot be read ({e.strerror}); check the path") from None


def _iter_file(path: Path, name: str) -> Iterator[Document]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from _iter_jsonl(path, name)
    elif suffix == ".parquet":
        yield from _iter_parquet(path, name)
    else:
        text = _decode(_read_bytes(path), str(path))
        if text:
            yield Document(name, text)


def _iter_jsonl(path: Path, name: str) -> Iterator[Document]:
    offset = 0
    try:
        fh = path.open("rb")
    except OSError as e:
        raise CorpusError(f"{path} cannot be read ({e.strerror}); check the path") from None
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise CorpusError(
                    f"{path}:{lineno} is not valid UTF-8 (bad byte at offset {offset + e.start}); "
                    "convert the file to UTF-8"
                ) from None
            offset += len(raw)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise CorpusError(
                    f"{path}:{lineno} is not valid JSON ({e.msg}); each line must be an object "
                    'like {"text": "..."}'
                ) from None
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise CorpusError(
                    f'{path}:{lineno} has no string field "text"; each line must be an object '
                    'like {"text": "..."}'
                )
            text = obj["text"]
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise CorpusError(
                    f'{path}:{lineno}: "text" holds a lone surrogate escape (like \\ud800); '
                    "fix or drop that line"
                ) from None
            if text:
                yield Document(f"{name}:{lineno}", text)


def _iter_parquet(path: Path, name: str) -> Iterator[Document]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise CorpusError(
            f"{path} is not a readable Parquet file ({_first_line(e)}); check the file"
        ) from None
    schema = pf.schema_arrow
    if "text" not in schema.names:
        raise CorpusError(
            f'{path} has no column "text" (columns: {", ".join(schema.names)}); '
            'rename the text column to "text"'
        )
    ftype = schema.field("text").type
    if not (pa.types.is_string(ftype) or pa.types.is_large_string(ftype)):
        raise CorpusError(f'{path}: column "text" has type {ftype}, not string; store text there')
    row = 0
    try:
        for batch in pf.iter_batches(columns=["text"]):
            for value in batch.column(0).to_pylist():
                if value is None:
                    raise CorpusError(f'{path}:{row} has a null "text"; drop or fill null rows')
                if value:
                    yield Document(f"{name}:{row}", value)
                row += 1
    except pa.ArrowException as e:
        raise CorpusError(
            f"{path} could not be read at row {row} ({_first_line(e)}); check the file"
        ) from None
