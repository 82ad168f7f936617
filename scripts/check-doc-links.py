#!/usr/bin/env python3
"""Checks the documentation's links; exits 1 listing every broken one.

    scripts/check-doc-links.py BOOK_DIR [MARKDOWN...]

- BOOK_DIR, the built mdBook site: every relative `href`/`src` of every page must name a file in
  the site, and a `#fragment` on a page must name an element id of that page.
- Each MARKDOWN file (README.md, docs/*.md as GitHub shows them): every relative link outside
  code must name an existing file; a `#fragment` on a Markdown target must name one of its
  headings (GitHub's heading ids).

Standard library only; external (scheme) links are not fetched.
"""

import html.parser
import pathlib
import re
import sys
import urllib.parse

EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")


class Page(html.parser.HTMLParser):
    """The element ids and the link targets of one HTML page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids = set()
        self.links = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if attrs.get(key):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) is not None:
                self.links.append(attrs[key])


def parse_page(path, cache):
    if path not in cache:
        page = Page()
        page.feed(path.read_text(encoding="utf-8"))
        cache[path] = page
    return cache[path]


def check_book(book, counts):
    broken = []
    cache = {}
    pages = sorted(book.rglob("*.html"))
    if not pages:
        return [f"{book}: no HTML pages (was the book built?)"]
    for page_path in pages:
        if page_path.name == "404.html":  # its links are relative to the site root by <base>
            continue
        page = parse_page(page_path, cache)
        for link in page.links:
            if not link or link == "#" or EXTERNAL.match(link):
                continue
            counts["book"] += 1
            parts = urllib.parse.urlsplit(link)
            target = page_path
            if parts.path:
                target = (page_path.parent / urllib.parse.unquote(parts.path)).resolve()
                if target.is_dir():
                    target = target / "index.html"
                if not target.is_relative_to(book.resolve()) or not target.is_file():
                    broken.append(f"{page_path.relative_to(book)}: {link} (no such file)")
                    continue
            fragment = urllib.parse.unquote(parts.fragment)
            if fragment and target.suffix == ".html":
                if fragment not in parse_page(target, cache).ids:
                    broken.append(f"{page_path.relative_to(book)}: {link} (no such anchor)")
    return broken


FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`[^`]*`")
MD_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def prose_lines(path, keep_code=False):
    """The lines of a Markdown file outside fenced code, with inline code removed (kept, minus
    its backticks, when `keep_code`: a heading's anchor includes its code text)."""
    fenced = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line.replace("`", "") if keep_code else INLINE_CODE.sub("", line)


def github_anchors(path):
    anchors = set()
    for _, line in prose_lines(path, keep_code=True):
        match = HEADING.match(line)
        if match:
            text = match.group(1).strip().lower()
            text = re.sub(r"[^\w\- ]", "", text)
            anchors.add(text.replace(" ", "-"))
    return anchors


def check_markdown(path, counts):
    broken = []
    for number, line in prose_lines(path):
        for link in MD_LINK.findall(line):
            if EXTERNAL.match(link):
                continue
            counts["markdown"] += 1
            parts = urllib.parse.urlsplit(link)
            target = path
            if parts.path:
                target = (path.parent / urllib.parse.unquote(parts.path)).resolve()
                if not target.exists():
                    broken.append(f"{path}:{number}: {link} (no such file)")
                    continue
            if parts.fragment and target.suffix == ".md":
                if parts.fragment.lower() not in github_anchors(target):
                    broken.append(f"{path}:{number}: {link} (no such heading)")
    return broken


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    counts = {"book": 0, "markdown": 0}
    broken = check_book(pathlib.Path(argv[1]), counts)
    for markdown in argv[2:]:
        broken += check_markdown(pathlib.Path(markdown), counts)
    for line in broken:
        print(f"broken link: {line}", file=sys.stderr)
    if broken:
        return 1
    print(
        f"links ok: {counts['book']} relative links in {argv[1]}, "
        f"{counts['markdown']} in {len(argv) - 2} Markdown files"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
