"""HTML documentation to prose paragraphs: the text of <p> (and DocBook's <div class="para">), nothing else.

Debian's documentation packages ship HTML made by DocBook (the handbook, the reference, the FAQ) and Sphinx
(policy). Their prose sits in paragraph elements; everything around it is navigation, tables of contents,
code listings, tables, titles and footnote markers, which are dropped with their whole subtree. Inline markup
(<code>, <em>, links) keeps its text, so "the file <code>/etc/fstab</code>" reads as it would in print. A block
inside a paragraph (a list, a listing) ends the paragraph there: the text after it is a new, usually partial,
paragraph that the prose filter then judges. The standard library's parser is enough; no lxml needed.
"""

from __future__ import annotations

from html.parser import HTMLParser

# Elements dropped with everything inside them.
SKIPPED_TAGS = {
    "head", "script", "style", "pre", "table", "nav", "footer", "form", "title", "h1", "h2", "h3", "h4", "h5",
    "h6", "sup", "button", "select", "textarea", "svg", "math", "object", "iframe", "noscript",
}
# Class names (any of an element's classes) whose elements are dropped: navigation, tables of contents, code.
SKIPPED_CLASSES = {
    "toc", "navheader", "navfooter", "docnav", "sphinxsidebar", "related", "footer", "titlepage", "title",
    "highlight", "screen", "programlisting", "literallayout", "synopsis", "cmdsynopsis", "funcsynopsis",
    "footnote", "footnotes", "footnote-reference", "fn-backref", "headerlink", "indexterm", "index", "banner",
    "table", "informaltable", "table-contents", "mediaobject", "figure", "example", "revhistory", "legalnotice",
    "searchbox", "sidebar-title", "breadcrumbs", "line-block", "doctest",
}
SKIPPED_IDS = {"banner", "title", "footer", "sidebar", "searchbox"}
PARAGRAPH_TAGS = {"p"}
PARAGRAPH_CLASSES = {"para"}  # Publican/DocBook (the handbook) writes paragraphs as <div class="para">
# Block elements: opening one inside a paragraph ends the paragraph's text so far.
BLOCK_TAGS = {
    "div", "ul", "ol", "dl", "li", "dt", "dd", "blockquote", "table", "pre", "section", "article", "aside",
    "figure", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "address", "center",
}
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
             "track", "wbr"}


def html_paragraphs(source: str) -> list[str]:
    """The raw text of each paragraph of an HTML page, in order (whitespace not yet collapsed)."""
    parser = _ParagraphParser()
    parser.feed(source)
    parser.close()
    parser.flush()
    return parser.paragraphs


class _ParagraphParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, skipped, paragraph) of each open element
        self.skipping = 0  # open skipped elements
        self.in_paragraph = 0  # open paragraph elements
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.text.append(" ")
        if tag in VOID_TAGS:
            return
        attributes = dict(attrs)
        classes = set((attributes.get("class") or "").split())
        skipped = tag in SKIPPED_TAGS or bool(classes & SKIPPED_CLASSES) or attributes.get("id") in SKIPPED_IDS
        paragraph = not skipped and (tag in PARAGRAPH_TAGS or bool(classes & PARAGRAPH_CLASSES))
        if tag == "p" and self.stack and self.stack[-1][0] == "p":
            self._close_top()  # HTML lets a <p> end where the next one starts
        if paragraph or (self.in_paragraph and tag in BLOCK_TAGS):
            self.flush()
        self.stack.append((tag, skipped, paragraph))
        self.skipping += skipped
        self.in_paragraph += paragraph

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.text.append(" ")
        elif tag not in VOID_TAGS:  # <div/> and the like in XHTML: open and closed at once
            self.handle_starttag(tag, attrs)
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if not any(open_tag == tag for open_tag, _, _ in self.stack):
            return  # a stray end tag
        while self.stack:
            if self._close_top() == tag:
                break
        if tag in BLOCK_TAGS and self.in_paragraph:
            self.flush()  # the paragraph's text after a block inside it is a paragraph of its own

    def handle_data(self, data: str) -> None:
        if self.in_paragraph and not self.skipping:
            self.text.append(data)

    def flush(self) -> None:
        text = "".join(self.text)
        self.text = []
        if text.strip():
            self.paragraphs.append(text)

    def _close_top(self) -> str:
        tag, skipped, paragraph = self.stack.pop()
        self.skipping -= skipped
        self.in_paragraph -= paragraph
        if paragraph:
            self.flush()
        return tag
