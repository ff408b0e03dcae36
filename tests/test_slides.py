"""The slide decks (tools/slides.py): one reveal.js deck per notebook, from the stored outputs.

Unmarked (fast, no browser): where slides fall, on a small notebook written here: the title and
each `## ` heading start a slide, a `### ` heading a sub-slide, and the tags `slide`, `subslide`,
`fragment`, `skip` and `notes` override the structure.

Marked `browser` (CI's timed step with the website): every deck built once from scratch into a
tmp folder, an index linking them, every deck loading only local files (reveal.js and MathJax
copied beside the decks, figures inlined), a real notebook's `## ` headings each starting a slide;
and in Chromium (tests/browser.py), a deck served over http on 127.0.0.1, moved to a slide with
maths (typeset by MathJax, no error) and to one with a plot (the image loaded), with no console
error and no request leaving localhost. Screenshots: build/browser/slides-*.png.
"""

from __future__ import annotations

import importlib.util
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
DECK = "05_softmax_and_cross_entropy"  # maths and a plot


def load_slides_module():
    spec = importlib.util.spec_from_file_location("course_slides", REPO / "tools" / "slides.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


slides = load_slides_module()


# --------------------------------------------------------------------------- parsing a deck


class Deck(HTMLParser):
    """A deck's slides (top-level <section>s) with their sub-slides, and what the page loads.

    Each slide is a list of sub-slides (the first one the slide itself); each sub-slide a dict
    with its `text`, the text inside `.fragment` divs (`fragments`) and inside `aside.notes`
    (`notes`)."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.slides: list[list[dict]] = []
        self.loaded: list[tuple[str, str]] = []
        self._stack: list[tuple[str, str]] = []  # (tag, role) of open elements
        self._in_style = False
        self.styles: list[str] = []

    def _sub(self) -> dict | None:
        return self.slides[-1][-1] if self.slides and self.slides[-1] else None

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        classes = set(a.get("class", "").split())
        if tag == "script" and a.get("src"):
            self.loaded.append((tag, a["src"]))
        if tag in ("img", "iframe", "embed", "source", "audio", "video") and a.get("src"):
            self.loaded.append((tag, a["src"]))
        if tag == "link" and a.get("href") and "stylesheet" in a.get("rel", "") + " icon":
            self.loaded.append((tag, a["href"]))
        if tag == "style":
            self._in_style = True
        if tag in self.VOID:
            return
        role = ""
        if tag == "section":
            # nbconvert writes every slide as <section> holding its sub-slides' <section>s (the
            # first sub-slide being the slide's own content).
            depth = sum(1 for t, _ in self._stack if t == "section")
            if depth == 0:
                self.slides.append([])
                role = "slide"
            else:
                self.slides[-1].append(_empty())
                role = "subslide"
        elif tag == "div" and "fragment" in classes:
            role = "fragment"
        elif tag == "aside" and "notes" in classes:
            role = "notes"
        self._stack.append((tag, role))

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][0] == tag:
                del self._stack[i:]
                break

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)
            return
        sub = self._sub()
        if sub is None:
            return
        roles = {r for _, r in self._stack}
        if "notes" in roles:
            sub["notes"] += data
        else:
            sub["text"] += data
            if "fragment" in roles:
                sub["fragments"] += data


def _empty() -> dict:
    return {"text": "", "fragments": "", "notes": ""}


def parse_deck(path: Path) -> Deck:
    deck = Deck()
    deck.feed(path.read_text(encoding="utf-8"))
    return deck


def is_remote(url: str) -> bool:
    parts = urlsplit(url)
    if url.startswith("//"):
        return parts.hostname not in ("localhost", "127.0.0.1")
    if parts.scheme in ("", "data", "blob", "about"):
        return False
    if parts.scheme in ("http", "https", "ws", "wss"):
        return parts.hostname not in ("localhost", "127.0.0.1", "::1")
    return True


CSS_URL = re.compile(r"""url\(\s*(['"]?)([^'")]+)\1\s*\)|@import\s+(['"])([^'"]+)\3""", re.I)
CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)


def css_urls(text: str) -> list[str]:
    return [m.group(2) or m.group(4) for m in CSS_URL.finditer(CSS_COMMENT.sub("", text))]


# --------------------------------------------------------------------------- slide boundaries


def cell(kind: str, source: str, tags=(), outputs=None):
    if kind == "markdown":
        c = nbformat.v4.new_markdown_cell(source)
    else:
        c = nbformat.v4.new_code_cell(source, outputs=outputs or [])
    if tags:
        c.metadata["tags"] = list(tags)
    return c


@pytest.fixture
def small_deck(tmp_path) -> Deck:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    stream = nbformat.v4.new_output("stream", name="stdout", text="printed-output\n" * 3)
    nb.cells = [
        cell("markdown", "# Title of the notebook\n\nIntro-text."),
        cell("code", "print('title-code')", outputs=[stream]),
        cell("markdown", "## First section"),
        cell("markdown", "First-section-prose with $x^2$."),
        cell("code", "secret = 'skipped-cell-text'", tags=["skip"]),
        cell("markdown", "Revealed-later.", tags=["fragment"]),
        cell("markdown", "### A sub-point"),
        cell("markdown", "Sub-point-prose."),
        cell("markdown", "Say-this-aloud.", tags=["notes"]),
        cell("markdown", "## Second section"),
        cell("markdown", "Forced-new-slide.", tags=["slide"]),
        cell("markdown", "Forced-sub-slide.", tags=["subslide"]),
        cell("markdown", "## Heading kept on the slide before", tags=["nbval-ignore-output"]),
        cell("code", ""),
    ]
    path = tmp_path / "90_small.ipynb"
    nbformat.write(nb, path)
    out = tmp_path / "out"
    out.mkdir()
    target, title = slides.build_deck(path, out)
    assert title == "Title of the notebook"
    return parse_deck(target)


def slide_texts(deck: Deck) -> list[list[str]]:
    return [[" ".join(sub["text"].split()) for sub in slide] for slide in deck.slides]


def test_headings_start_slides_and_sub_slides(small_deck):
    texts = slide_texts(small_deck)
    assert len(texts) == 5, texts
    assert texts[0][0].startswith("Title of the notebook") and "title-code" in texts[0][0]
    assert "printed-output" in texts[0][0], "an output is kept on its slide"
    assert texts[1][0].startswith("First section") and "First-section-prose" in texts[1][0]
    assert len(texts[1]) == 2 and texts[1][1].startswith("A sub-point")
    assert "Sub-point-prose" in texts[1][1]
    assert texts[2] == [texts[2][0]] and texts[2][0].startswith("Second section")
    assert texts[3][0].startswith("Forced-new-slide")
    assert len(texts[3]) == 2 and texts[3][1].startswith("Forced-sub-slide")
    # `## ` starts a slide; a tag that is not a slide tag changes nothing.
    assert texts[4][0].startswith("Heading kept on the slide before")


def test_skip_fragment_and_notes_tags(small_deck):
    everything = " ".join(s["text"] + s["notes"] for slide in small_deck.slides for s in slide)
    assert "skipped-cell-text" not in everything
    first_section = small_deck.slides[1][0]
    assert "Revealed-later" in first_section["fragments"]
    assert "First-section-prose" not in first_section["fragments"]
    sub = small_deck.slides[1][1]
    assert "Say-this-aloud" in sub["notes"] and "Say-this-aloud" not in sub["text"]


def test_tag_precedence_and_defaults():
    md = {"cell_type": "markdown", "metadata": {}, "source": "text"}
    assert slides.slide_type(md, 0) == "slide"  # the title cell
    assert slides.slide_type(md, 3) == "-"
    assert slides.slide_type({**md, "source": "## A"}, 3) == "slide"
    assert slides.slide_type({**md, "source": ["### B\n", "more"]}, 3) == "subslide"
    assert slides.slide_type({**md, "source": "#### C"}, 3) == "-"
    code = {"cell_type": "code", "metadata": {}, "source": "## not a heading", "outputs": []}
    assert slides.slide_type(code, 3) == "-"
    assert slides.slide_type({**code, "source": "  \n"}, 3) == "skip"
    tagged = {**md, "source": "## A", "metadata": {"tags": ["fragment", "skip"]}}
    assert slides.slide_type(tagged, 3) == "skip"
    tagged["metadata"]["tags"] = ["subslide", "notes"]
    assert slides.slide_type(tagged, 3) == "notes"
    tagged["metadata"]["tags"] = ["fragment"]
    assert slides.slide_type(tagged, 3) == "fragment"


# --------------------------------------------------------------------------- every deck


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """Every deck, built from scratch into a tmp folder."""
    out = tmp_path_factory.mktemp("slides")
    seconds = slides.build(out, quiet=True)
    print(f"\n[slides] full build took {seconds:.1f} s")
    return out


def notebook_stems() -> list[str]:
    return sorted(p.stem for p in (REPO / "notebooks").glob("[0-9]*.ipynb"))


@pytest.mark.browser
def test_every_notebook_has_a_deck_linked_from_the_index(built):
    stems = notebook_stems()
    assert len(stems) >= 10
    index = (built / "index.html").read_text(encoding="utf-8")
    for stem in stems:
        deck = built / f"{stem}.html"
        assert deck.is_file() and deck.stat().st_size > 50_000, stem
        assert f'href="{stem}.html"' in index, stem
        assert len(parse_deck(deck).slides) >= 3, stem


@pytest.mark.browser
def test_every_deck_loads_only_local_files(built):
    problems = []
    for page in sorted(built.glob("*.html")):
        deck = parse_deck(page)
        for tag, url in deck.loaded:
            if is_remote(url):
                problems.append(f"{page.name}: <{tag}> {url}")
            elif not url.startswith(("data:", "#")):
                target = built / unquote(urlsplit(url).path)
                if not target.is_file():
                    problems.append(f"{page.name}: <{tag}> {url} is missing")
        for style in deck.styles:
            problems += [f"{page.name}: url({u})" for u in css_urls(style) if is_remote(u)]
        text = page.read_text(encoding="utf-8")
        assert "unpkg.com" not in text and "cdnjs" not in text and "cdn.jsdelivr" not in text
    for css in built.rglob("*.css"):
        for url in css_urls(css.read_text(encoding="utf-8", errors="replace")):
            if is_remote(url):
                problems.append(f"{css.relative_to(built)}: url({url})")
            elif not url.startswith("data:"):
                if not (css.parent / unquote(urlsplit(url).path)).is_file():
                    problems.append(f"{css.relative_to(built)}: url({url}) is missing")
    assert not problems, "\n".join(problems[:40])
    assert (built / "reveal.js" / "dist" / "reveal.js").stat().st_size > 50_000
    assert (built / "mathjax" / "tex-chtml.js").stat().st_size > 500_000


@pytest.mark.browser
def test_a_real_notebooks_sections_each_start_a_slide(built):
    nb = nbformat.read(REPO / "notebooks" / f"{DECK}.ipynb", as_version=4)
    headings = [
        c.source.lstrip("\n").splitlines()[0][3:].strip()
        for c in nb.cells
        if c.cell_type == "markdown" and c.source.lstrip("\n").startswith("## ")
    ]
    assert len(headings) >= 5
    deck = parse_deck(built / f"{DECK}.html")
    firsts = [" ".join(slide[0]["text"].split()) for slide in deck.slides]
    assert len(firsts) == 1 + len(headings), firsts
    for heading, first in zip(headings, firsts[1:], strict=True):
        words = re.findall(r"\w+", heading)  # the heading's Markdown (`code`, $maths$) rendered
        assert re.findall(r"\w+", first)[: len(words)] == words, (heading, first[:80])


@pytest.mark.browser
def test_course_tool_has_the_slides_command():
    import course

    if "slides" not in course.COMMANDS:
        pytest.skip("tools/course.py has no `slides` subcommand yet")
    assert course.COMMANDS["slides"] is course.cmd_slides


# --------------------------------------------------------------------------- in a browser


@pytest.fixture(scope="module")
def slides_url(built):
    """The decks served over http on 127.0.0.1 (a free port) for the module's tests."""
    from browser import serve

    with serve(built) as url:
        yield url


def open_deck(page, url: str) -> None:
    page.goto(url, wait_until="load")
    page.wait_for_function("() => window.Reveal && Reveal.isReady()")
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
    page.evaluate("() => MathJax.startup.promise.then(() => true)")


# The [h, v] indices of the first slide whose content matches a selector.
FIND_SLIDE = """(selector) => {
  for (const s of document.querySelectorAll('.reveal .slides section')) {
    if (s.querySelector('section')) continue;   // a stack: look at its sub-slides
    if (s.querySelector(selector)) { const i = Reveal.getIndices(s); return [i.h, i.v || 0]; }
  }
  return null;
}"""


def go_to(page, selector: str) -> list[int]:
    where = page.evaluate(FIND_SLIDE, selector)
    assert where is not None, f"no slide has {selector}"
    page.evaluate("([h, v]) => Reveal.slide(h, v)", where)
    page.wait_for_function(
        "([h, v]) => { const i = Reveal.getIndices(); return i.h === h && (i.v || 0) === v; }",
        arg=where,
    )
    page.wait_for_timeout(300)  # the slide's layout settles (no transition is configured)
    return where


@pytest.mark.browser
def test_a_deck_in_a_browser_shows_its_maths_and_its_plot(browser, slides_url):
    from browser import watch

    with watch(browser, "slides", width=1280, height=800) as w:
        page = w.page
        open_deck(page, f"{slides_url}/{DECK}.html")
        w.screenshot("slides-title")

        # Maths: a slide with a displayed equation that MathJax typeset.
        where = go_to(page, '.jp-MarkdownOutput mjx-container[display="true"]')
        current = "() => Reveal.getCurrentSlide()"
        n_maths = page.evaluate(f"() => ({current})().querySelectorAll('mjx-container').length")
        assert n_maths > 0, where
        assert page.evaluate("() => document.querySelectorAll('mjx-merror').length") == 0
        assert page.evaluate("() => document.querySelectorAll('mjx-container').length") >= 10
        assert page.evaluate(f"() => ({current})().getBoundingClientRect().height") > 100
        w.screenshot("slides-maths")

        # A plot: a slide with a figure from the stored outputs, loaded.
        where = go_to(page, ".jp-OutputArea-output img")
        sizes = page.evaluate(
            f"() => Array.from(({current})().querySelectorAll('.jp-OutputArea-output img'))"
            ".map(i => [i.complete, i.naturalWidth, i.getBoundingClientRect().width])"
        )
        assert sizes and all(done and nat > 0 and shown > 100 for done, nat, shown in sizes), (
            where,
            sizes,
        )
        # A slide taller than the screen scrolls (outputs are kept whole): bring the plot up.
        scrolled = page.evaluate(
            f"""() => {{
                const slide = ({current})();
                const img = slide.querySelector('.jp-OutputArea-output img');
                const dy = img.getBoundingClientRect().top - slide.getBoundingClientRect().top;
                slide.scrollTop += dy / Reveal.getScale() - 20;
                const s = slide.getBoundingClientRect(), r = img.getBoundingClientRect();
                return [slide.scrollTop, r.top >= s.top - 1 && r.bottom <= s.bottom + 1];
            }}"""
        )
        assert scrolled[1], f"the plot cannot be brought into view: {scrolled}"
        w.screenshot("slides-plot")

        # The index links every deck, and a link opens its deck.
        page.goto(f"{slides_url}/index.html", wait_until="load")
        links = page.locator("a[href$='.html']")
        assert links.count() == len(notebook_stems())
        w.screenshot("slides-index")
        page.locator(f"a[href='{DECK}.html']").click()
        page.wait_for_function("() => window.Reveal && Reveal.isReady()")
        assert page.url.startswith(f"{slides_url}/{DECK}.html")
        w.assert_clean()


@pytest.mark.browser
def test_every_deck_opens_cleanly_in_a_browser(browser, slides_url):
    """Each deck: reveal.js starts, MathJax typesets every formula without an error, every
    figure loads, no console error, nothing requested from outside."""
    from browser import watch

    problems = []
    for stem in notebook_stems():
        with watch(browser, f"slides-{stem}", width=1280, height=800) as w:
            open_deck(w.page, f"{slides_url}/{stem}.html")
            errors, broken, slides_ = w.page.evaluate(
                """() => [
                    document.querySelectorAll('mjx-merror').length,
                    Array.from(document.images)
                        .filter(i => !(i.complete && i.naturalWidth > 0)).length,
                    Reveal.getTotalSlides(),
                ]"""
            )
            if errors or broken or slides_ < 3:
                problems.append(
                    f"{stem}: {errors} maths errors, {broken} broken images, {slides_} slides"
                )
            problems += [f"{stem}: {e}" for e in w.console_errors + w.page_errors]
            problems += [f"{stem}: left localhost: {r}" for r in w.external_requests]
    assert not problems, "\n".join(problems)
