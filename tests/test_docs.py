"""The manual (README.md and docs/*.md): its links resolve and its configuration reference is current.

Relative links must name an existing file and, with ``#anchor``, a heading of
that file, by GitHub's rule for heading anchors: the heading's text lowercased,
characters other than letters, digits, spaces, hyphens and underscores dropped,
spaces turned into hyphens, and a repeated anchor given -1, -2, ... in order.
"""

import re

import pytest

from embmap import config
from helpers import ROOT

DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]
BEGIN, END = config.REFERENCE_MARKERS
REGENERATE = "python -m embmap reference docs/configuration.md"


def _unfenced(text: str) -> str:
    """The text without fenced code blocks, where ``#`` starts no heading."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _prose(text: str) -> str:
    """The text without code blocks and inline code, where brackets are not links."""
    return re.sub(r"`[^`\n]*`", "", _unfenced(text))


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown text."""
    seen: dict[str, int] = {}
    out = set()
    for line in _unfenced(text).splitlines():
        m = re.match(r"^#{1,6} +(.*?) *#*$", line)
        if not m:
            continue
        heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1)).replace("`", "")
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links(text: str) -> list[str]:
    """Targets of the Markdown links and images of a text (inline form), outside code."""
    return re.findall(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", _prose(text))


def test_the_anchor_rule_is_githubs():
    text = "# A `code` title\n## Fit: ridge, lstsq & more\n## Fit: ridge, lstsq & more\n```\n# not a heading\n```\n"
    assert anchors(text) == {"a-code-title", "fit-ridge-lstsq--more", "fit-ridge-lstsq--more-1"}


def broken_links(page) -> list[str]:
    text = page.read_text()
    bad = []
    for target in links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        shown = dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest
        if not dest.exists():
            bad.append(f"{target}: no file {shown}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            bad.append(f"{target}: no heading with anchor #{anchor} in {shown}")
    return bad


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    bad = broken_links(page)
    assert not bad, f"{page.relative_to(ROOT)}: broken links:\n" + "\n".join(bad)


def test_a_broken_link_is_found(tmp_path):
    (tmp_path / "there.md").write_text("# There\n## A section\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md#a-section) [gone](missing.md) [no anchor](there.md#b-section) `[code](x.md)`\n")
    bad = broken_links(page)
    assert [b.split(":")[0] for b in bad] == ["missing.md", "there.md#b-section"]


def test_the_readme_links_every_docs_page():
    linked = {t.partition("#")[0] for t in links((ROOT / "README.md").read_text())}
    missing = [p.name for p in DOCS if f"docs/{p.name}" not in linked]
    assert DOCS and not missing, f"README.md does not link to {missing}"


def test_every_docs_page_starts_with_a_table_of_contents():
    for page in DOCS:
        text = page.read_text()
        sections = [line[3:] for line in _unfenced(text).splitlines() if line.startswith("## ")]
        head = text.split("\n## ", 1)[0]
        for line in sections:
            assert f"[{line}](#" in head, f"{page.name}: the table of contents at the top lacks {line!r}"


def test_the_configuration_reference_is_generated_from_the_schema():
    text = (ROOT / "docs" / "configuration.md").read_text()
    assert BEGIN in text and END in text, "docs/configuration.md: the generated reference's markers are missing"
    generated = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert REGENERATE in text, "docs/configuration.md: the command that regenerates the reference is missing"
    assert generated.strip() == config.reference_markdown().strip(), (
        "docs/configuration.md: the configuration reference is not the schema's; regenerate it from the "
        f"repository root with:\n{REGENERATE}")


def test_the_reference_has_every_key_of_the_schema():
    """Spot checks across $ref, conditional defaults and per-source branches."""
    ref = config.reference_markdown()
    for key, fragment in [("results", "`results`"), ("experiments.NAME.mapping.alpha", "`1.0`"),
                          ("experiments.NAME.similarity.svcca_k", "`10`"),
                          ("experiments.NAME.identification", "`{}` when `task` is `open_set`"),
                          ("experiments.NAME.networks.KEY.align.size", "`160` when `style` is `facenet`"),
                          ("experiments.NAME.networks.KEY.train.epochs", "`20`"),
                          ("experiments.NAME.networks.KEY.channel_order", "`rgb`"),
                          ("experiments.NAME.dataset.bad_images", "`fail`")]:
        rows = [line for line in ref.splitlines() if line.startswith(f"| `{key}` |")]
        assert rows and any(fragment in r for r in rows), (key, rows)
    assert "#### source: onnx" in ref and "#### kind: image_list" in ref
