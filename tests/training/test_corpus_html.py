"""HTML pages (DocBook, Publican, Sphinx) to paragraph text: prose kept, everything around it dropped."""

from __future__ import annotations

from training.corpus_html import html_paragraphs
from training.corpus_prose import finish_paragraph

PUBLICAN = """<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Chapter 6. APT</title><style>p { color: red }</style>
</head><body><div id="banner"><a href="x"><span class="text">Download the ebook</span></a></div>
<ul class="docnav top"><li class="previous"><a href="a.html"><strong>Prev</strong></a></li></ul>
<div class="chapter"><div class="titlepage"><h1 class="title">Chapter 6. Maintenance</h1></div>
<div class="toc"><dl class="toc"><dt><a href="apt.html">6.1. Filling in the sources.list File</a></dt></dl></div>
<div class="para">
\t\tAPT is the abbreviation for <span class="emphasis"><em>Advanced Packaging Tool</em></span>. It reads
\t\t<code class="filename">/etc/apt/sources.list</code>&nbsp;and&#160;decides&#x2026;
\t</div><a id="id-1" class="indexterm"></a>
<div class="sidebar"><div class="titlepage"><p class="title"><strong>TIP</strong> Incremental updates</p></div>
<div class="para">A tip is prose too<sup>[<a href="#ftn.1" class="footnote">1</a>]</sup>.</div></div>
<div class="para">Before the listing, <pre class="screen"><code class="computeroutput">$ apt update</code></pre>
after the listing.</div>
<table><tr><td><p>A paragraph in a table cell is not prose.</p></td></tr></table>
<div class="footnotes"><div class="footnote"><div class="para">The footnote text.</div></div></div>
</div><p>First unclosed paragraph.<p>Second one,<br/>with a break.</p>
<script>var p = "<p>not text</p>";</script></body></html>
"""

SPHINX = """<!DOCTYPE html><html><head><title>Binary packages</title></head><body>
<div class="related" role="navigation"><ul><li><a href="index.html">Debian Policy Manual</a></li></ul></div>
<section id="s3"><h2><span class="section-number">3.1. </span>The package name<a class="headerlink" href="#s3"
title="Permalink to this heading">\u00b6</a></h2>
<p>Every package must have a name that is unique within the <code class="docutils literal notranslate">
<span class="pre">Debian</span></code> archive<a class="footnote-reference brackets" href="#id3">1</a>.</p>
<div class="highlight-default notranslate"><div class="highlight"><pre>Package: hello</pre></div></div>
<p>The list:</p><ul><li><p>an item paragraph.</p></li></ul>
</section><div class="footer">&#169; Copyright 2022.</div></body></html>
"""


def test_docbook_paragraphs_keep_inline_text_and_drop_the_rest():
    paragraphs = [" ".join(p.split()) for p in html_paragraphs(PUBLICAN)]
    assert paragraphs == [
        "APT is the abbreviation for Advanced Packaging Tool. It reads /etc/apt/sources.list and decides\u2026",
        "A tip is prose too.",
        "Before the listing,",
        "after the listing.",
        "First unclosed paragraph.",
        "Second one, with a break.",
    ]


def test_sphinx_paragraphs_drop_navigation_headings_footnote_marks_and_code():
    paragraphs = [" ".join(p.split()) for p in html_paragraphs(SPHINX)]
    assert paragraphs == [
        "Every package must have a name that is unique within the Debian archive.",
        "The list:",
        "an item paragraph.",
    ]


def test_fragments_around_blocks_fail_the_prose_rules():
    kept = [p for p in map(finish_paragraph, html_paragraphs(PUBLICAN + SPHINX)) if p]
    assert kept == [
        "APT is the abbreviation for Advanced Packaging Tool. It reads /etc/apt/sources.list and decides...",
        "Every package must have a name that is unique within the Debian archive.",
    ]
