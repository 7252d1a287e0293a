"""Reading ``seeds/``: topics, seed documents, counter-examples, header lines.

Layout (see seeds/README.md)::

    seeds/                 files here form the topic named after the folder ("seeds")
      report.txt
      not/                 counter-examples of that topic
      cyber/               a further topic, "cyber", with its own files and not/
        a.md
        not/b.txt

Files are ``.txt`` or ``.md`` (README files excepted). Lines at the very top of the form
``date 2025-10-17`` or ``source: nCa`` are metadata, not text.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from seedwatch.errors import SeedError

log = logging.getLogger(__name__)

SEED_SUFFIXES = frozenset({".txt", ".md", ".text", ".markdown"})
COUNTER_DIR = "not"
HEADER_KEYS = (
    "date",
    "published",
    "source",
    "url",
    "link",
    "title",
    "lang",
    "language",
    "author",
    "topic",
    "tags",
    "id",
)
_HEADER_LINE = re.compile(
    r"^\s*(" + "|".join(HEADER_KEYS) + r")\s*[:=]?\s+(\S.{0,2000}?)\s*$", re.IGNORECASE
)
# The shipped seed carries its date glued to the first sentence: "date 2025-10-17 On 17 ...".
_INLINE_DATE = re.compile(
    r"^\s*(date|published)\s*[:=]?\s*(\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?Z?)?)\s+",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?=[\"«(\[]?[A-ZА-ЯЁ0-9])")
MAX_PASSAGE = 700


@dataclass(frozen=True)
class SeedDoc:
    """One seed or counter-example file, split into passages (paragraphs)."""

    name: str  # path relative to the seeds folder, "/"-separated
    text: str
    passages: tuple[str, ...]
    meta: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Topic:
    name: str
    seeds: tuple[SeedDoc, ...]
    counter: tuple[SeedDoc, ...] = ()


@dataclass(frozen=True)
class SeedSet:
    topics: tuple[Topic, ...]
    root: Path | None = None
    files: tuple[Path, ...] = field(default=(), compare=False)  # for reload-on-edit

    def topic(self, name: str) -> Topic | None:
        return next((t for t in self.topics if t.name == name), None)

    def with_docs(
        self, topic: str, seeds: tuple[SeedDoc, ...] = (), counter: tuple[SeedDoc, ...] = ()
    ) -> SeedSet:
        """A copy with documents added to ``topic`` (created when new): for labels and k-shot."""
        topics = list(self.topics)
        for i, t in enumerate(topics):
            if t.name == topic:
                topics[i] = Topic(t.name, t.seeds + seeds, t.counter + counter)
                break
        else:
            topics.append(Topic(topic, seeds, counter))
        return SeedSet(tuple(topics), self.root, self.files)


def split_header(raw: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The text without its leading metadata lines, and the metadata as (key, value) pairs."""
    meta: list[tuple[str, str]] = []
    lines = raw.lstrip("\ufeff").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        inline = _INLINE_DATE.match(line)
        if inline and len(line) > inline.end() + 40:
            meta.append((inline.group(1).lower(), inline.group(2)))
            lines[i] = line[inline.end() :]
            break
        m = _HEADER_LINE.match(line)
        # A header value is short; a long line starting with "Date" is prose.
        long_ok = m is not None and m.group(1).lower() in ("url", "link") and " " not in m.group(2)
        if m and (len(m.group(2)) <= 120 or long_ok) and len(m.group(2).split()) <= 8:
            meta.append((m.group(1).lower(), m.group(2)))
            i += 1
            continue
        break
    return "\n".join(lines[i:]).strip(), tuple(meta)


def split_passages(text: str) -> tuple[str, ...]:
    """Paragraphs; long ones cut into runs of whole sentences of at most ``MAX_PASSAGE`` chars."""
    out: list[str] = []
    for para in re.split(r"\n\s*\n|\r\n\s*\r\n", text):
        para = " ".join(para.split())
        if not para:
            continue
        if len(para) <= MAX_PASSAGE:
            out.append(para)
            continue
        chunk = ""
        for sent in _SENTENCE_END.split(para):
            if chunk and len(chunk) + len(sent) > MAX_PASSAGE:
                out.append(chunk)
                chunk = ""
            chunk = f"{chunk} {sent}".strip()
        if chunk:
            out.append(chunk)
    return tuple(out)


def make_doc(name: str, raw: str) -> SeedDoc | None:
    """A SeedDoc from raw file text, or None when nothing but headers is left."""
    text, meta = split_header(raw)
    passages = split_passages(text)
    if not passages:
        return None
    return SeedDoc(name=name, text="\n\n".join(passages), passages=passages, meta=meta)


def _read(path: Path, root: Path) -> SeedDoc | None:
    try:
        raw = path.read_bytes().decode("utf-8-sig", errors="replace")
    except OSError as e:
        raise SeedError(f"cannot read seed file {path}: {e.strerror or e}") from e
    if "\x00" in raw:
        log.warning("seed file skipped, binary content: %s", path)
        return None
    return make_doc(path.relative_to(root).as_posix(), raw)


def _files(folder: Path, *, recursive: bool) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(
        p
        for p in folder.glob(pattern)
        if p.is_file()
        and p.suffix.lower() in SEED_SUFFIXES
        and not p.name.startswith(".")
        # seeds/README.md explains the folder; it is not an example of anything.
        and not p.name.lower().startswith("readme")
    )


def _topic(name: str, folder: Path, root: Path, *, top: bool) -> tuple[Topic | None, list[Path]]:
    counter_dir = folder / COUNTER_DIR
    if top:
        seed_files = _files(folder, recursive=False)
    else:
        seed_files = [
            p
            for p in _files(folder, recursive=True)
            if COUNTER_DIR not in p.relative_to(folder).parts[:-1]
        ]
    counter_files = _files(counter_dir, recursive=True) if counter_dir.is_dir() else []
    seeds = tuple(d for d in (_read(p, root) for p in seed_files) if d)
    counter = tuple(d for d in (_read(p, root) for p in counter_files) if d)
    if not seeds:
        if counter:
            log.warning("topic=%s has counter-examples but no seed; ignored", name)
        return None, seed_files + counter_files
    return Topic(name, seeds, counter), seed_files + counter_files


def load_seeds(path: Path) -> SeedSet:
    """Read a seeds folder (or a single seed file) into topics.

    Raises SeedError when the path cannot be read or holds no usable seed document.
    """
    path = Path(path)
    if path.is_file():
        doc = _read(path, path.parent)
        if doc is None:
            raise SeedError(f"seed file {path} holds no text")
        return SeedSet((Topic(path.parent.name or "seeds", (doc,)),), path.parent, (path,))
    if not path.is_dir():
        raise SeedError(f"seeds folder {path} does not exist or is not a folder")
    root = path.resolve()
    try:
        subdirs = sorted(
            p
            for p in root.iterdir()
            if p.is_dir() and p.name != COUNTER_DIR and not p.name.startswith(".")
        )
    except OSError as e:
        raise SeedError(f"cannot list seeds folder {path}: {e.strerror or e}") from e
    topics: list[Topic] = []
    files: list[Path] = []
    top, seen = _topic(root.name, root, root, top=True)
    files += seen
    if top:
        topics.append(top)
    for sub in subdirs:
        topic, seen = _topic(sub.name, sub, root, top=False)
        files += seen
        if topic:
            topics.append(topic)
    if not topics:
        raise SeedError(
            f"seeds folder {path} holds no usable seed document (.txt or .md with text)"
        )
    return SeedSet(tuple(topics), root, tuple(files))
