"""The measured sections of docs/*.md: each benchmark replaces the text between its own two markers
(``<!-- NAME:begin -->`` ... ``<!-- NAME:end -->``) and leaves the rest of the page as it is."""

from __future__ import annotations

from pathlib import Path


def replace_section(doc: str, name: str, body: str) -> str:
    """``doc`` with the section ``name`` set to ``body`` (appended, with its markers, when absent)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin in doc and end in doc:
        head, rest = doc.split(begin, 1)
        return head + begin + "\n" + body + "\n" + end + rest.split(end, 1)[1]
    return doc.rstrip() + "\n\n" + begin + "\n" + body + "\n" + end + "\n"


def write_section(path: Path, name: str, body: str, *, title: str = "") -> None:
    """Replace section ``name`` of the page at ``path`` (a new page starts with ``title``)."""
    doc = path.read_text() if path.is_file() else (f"# {title}\n" if title else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(replace_section(doc, name, body))
