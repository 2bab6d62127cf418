"""The project's design document is its own: every citation points to ``docs/design.md``
and names a section that exists there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"
#: Where citations may appear.
SOURCES = ["README.md", "src", "docs", "experiments", "benchmarks", "scripts", "tests"]
SUFFIXES = {".py", ".md", ".sh", ".toml"}


def project_texts() -> dict[Path, str]:
    files: list[Path] = []
    for name in SOURCES:
        path = ROOT / name
        files += [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return {p: p.read_text(encoding="utf-8") for p in files if p.suffix in SUFFIXES}


def test_no_citation_of_a_design_file_users_do_not_have():
    outside = "DESIGN" + ".md"  # the shared specification, outside the project
    citing = [str(p.relative_to(ROOT)) for p, text in project_texts().items() if outside in text]
    assert citing == []


def test_cited_design_sections_exist():
    headings = set(re.findall(r"^## (\d+)\. ", DESIGN.read_text(encoding="utf-8"), re.M))
    assert headings == {str(n) for n in range(1, 14)}
    cited = {
        (str(p.relative_to(ROOT)), number)
        for p, text in project_texts().items()
        for number in re.findall(r"design(?:\.md|\]\(design\.md\)) section (\d+)", text)
    }
    assert cited, "the code cites the design document"
    assert {(p, n) for p, n in cited if n not in headings} == set()
