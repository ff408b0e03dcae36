"""The course website (tools/site.py): built once from the notebooks as stored, then checked.

Offline, as files: every notebook of the course map has a page and the home page links to it,
a notebook page shows its figures and its maths (MathJax markup, MathJax itself from local
files), every local link and resource resolves (anchors included), no page or stylesheet loads
anything from outside the site, and the search index finds a known word in a known notebook.

In a real browser (tests/browser.py: Playwright driving Debian's chromium; skipped where there is
none unless COURSE_REQUIRE_BROWSER=1): the site served over http on 127.0.0.1, the home page, a
notebook page with its figures loaded and its equations typeset by MathJax, and the search page
answering a query, with no console error and no request leaving localhost. Screenshots go to
build/browser/.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

pytestmark = pytest.mark.browser  # .ci/run times the site and browser checks as a step of their own
REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "build" / "browser"

# A notebook page with figures and equations, a word its text uses and no other page's does
# much, and the stem Sphinx's English search indexes that word under.
KNOWN_PAGE = "notebooks/05_softmax_and_cross_entropy"
KNOWN_WORD = "perplexity"

# Attributes whose URL the browser fetches by itself (as opposed to <a href>, which it follows
# only when clicked): these must be local.
LOADED = {
    "script": ("src",),
    "img": ("src", "srcset"),
    "iframe": ("src",),
    "frame": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "track": ("src",),
    "input": ("src",),
}
LOADED_LINK_RELS = {
    "stylesheet",
    "icon",
    "shortcut",
    "apple-touch-icon",
    "preload",
    "prefetch",
    "modulepreload",
    "manifest",
    "preconnect",
    "dns-prefetch",
}
CSS_URL = re.compile(r"""url\(\s*(['"]?)([^'")]+)\1\s*\)|@import\s+(['"])([^'"]+)\3""", re.I)
CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)


def load_site_module():
    """tools/site.py by path: as a module named `site` it would be the stdlib's."""
    spec = importlib.util.spec_from_file_location("course_site", REPO / "tools" / "site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site_module():
    return load_site_module()


@pytest.fixture(scope="module")
def site(site_module, tmp_path_factory) -> Path:
    """The website, built from scratch (staging, doctrees and output in a tmp dir)."""
    root = tmp_path_factory.mktemp("site")
    out = root / "html"
    seconds = site_module.build(out, stage_dir=root / "src", doctrees=root / "doctrees")
    print(f"\n[site] full build took {seconds:.1f} s")
    assert (out / "index.html").is_file()
    return out


# --------------------------------------------------------------------------- parsing


class Page(HTMLParser):
    """The URLs an HTML page links to and loads, and the ids it defines."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []  # followed when clicked
        self.loaded: list[tuple[str, str]] = []  # (tag, url) fetched by the browser itself
        self.ids: set[str] = set()
        self.styles: list[str] = []  # inline style attributes and <style> bodies
        self.imgs: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        for key in ("id", "name") if tag == "a" else ("id",):
            if a.get(key):
                self.ids.add(a[key])
        if a.get("style"):
            self.styles.append(a["style"])
        if tag == "style":
            self._in_style = True
        if tag == "img" and a.get("src"):
            self.imgs.append(a["src"])
        if tag in ("a", "area") and a.get("href"):
            self.links.append(a["href"])
        if tag == "link" and a.get("href"):
            rels = set(a.get("rel", "").lower().split())
            if rels & LOADED_LINK_RELS:
                self.loaded.append(("link", a["href"]))
            else:
                self.links.append(a["href"])
        for attr in LOADED.get(tag, ()):
            value = a.get(attr)
            if not value:
                continue
            if attr == "srcset":
                for part in value.split(","):
                    if part.strip():
                        self.loaded.append((tag, part.split()[0]))
            else:
                self.loaded.append((tag, value))

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


@functools.cache
def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def css_urls(text: str) -> list[str]:
    text = CSS_COMMENT.sub("", text)
    return [m.group(2) or m.group(4) for m in CSS_URL.finditer(text)]


def is_remote(url: str) -> bool:
    """True for a URL that leaves the site's host (http(s), protocol-relative, ftp...)."""
    parts = urlsplit(url)
    if parts.scheme in ("", "data", "blob", "about"):
        return url.startswith("//") and parts.hostname not in ("localhost", "127.0.0.1")
    if parts.scheme in ("http", "https", "ws", "wss"):
        return parts.hostname not in ("localhost", "127.0.0.1", "::1")
    return parts.scheme not in ("mailto", "javascript")


def resolve(site: Path, base: Path, url: str) -> tuple[Path, str] | None:
    """The file a relative URL names (and its fragment), or None for a non-local URL."""
    parts = urlsplit(url)
    if parts.scheme or url.startswith("//"):
        return None
    if not parts.path:
        return base, parts.fragment
    target = (base.parent / unquote(parts.path)).resolve()
    if parts.path.endswith("/") or target.is_dir():
        target = target / "index.html"
    return target, parts.fragment


def html_pages(site: Path) -> list[Path]:
    return sorted(p for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts)


# --------------------------------------------------------------------------- the pages


def course_notebooks() -> list[str]:
    """The stems of the course map's notebooks that exist in notebooks/."""
    from course_lib.profile import load_course_map

    cmap = load_course_map(REPO / "course_map.toml")
    return [
        nb["file"][: -len(".ipynb")]
        for nb in cmap["notebook"]
        if (REPO / "notebooks" / nb["file"]).is_file()
    ]


def test_every_notebook_has_a_page_listed_on_the_home_page(site):
    stems = course_notebooks()
    assert len(stems) >= 10, stems
    home = parse(site / "index.html")
    for stem in stems:
        assert (site / "notebooks" / f"{stem}.html").is_file(), f"no page for {stem}"
        assert f"notebooks/{stem}.html" in home.links, f"the home page does not link {stem}"
    text = (site / "index.html").read_text(encoding="utf-8")
    assert "The course map" in text and "Run time" in text
    for page in ("ERRATA.html", "README.html", "search.html"):
        assert (site / page).is_file(), page
        assert page in home.links, f"the navigation does not link {page}"


def test_a_notebook_page_shows_its_figures_and_maths(site):
    path = site / f"{KNOWN_PAGE}.html"
    page = parse(path)
    pngs = [src for src in page.imgs if src.endswith(".png")]
    assert pngs, f"{KNOWN_PAGE} has no figure"
    for src in pngs:
        target, _ = resolve(site, path, src)
        assert target.is_file() and target.stat().st_size > 1000, src
        assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", src
    html = path.read_text(encoding="utf-8")
    # MyST writes TeX for MathJax to typeset: inline \( \) and display \[ \] in math spans/divs.
    assert re.search(r'class="math notranslate nohighlight">\\[(\[]', html), "no maths markup"
    scripts = [url for tag, url in page.loaded if tag == "script"]
    mathjax = [url for url in scripts if url.split("?")[0].endswith("mathjax/tex-chtml.js")]
    assert mathjax, f"MathJax is not loaded: {scripts}"
    target, _ = resolve(site, path, mathjax[0])
    assert target.is_file() and target.stat().st_size > 500_000
    fonts = site / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2"
    assert len(list(fonts.glob("*.woff"))) >= 20, "MathJax's fonts were not copied"


def test_errata_page_links_resolve_to_the_readme(site):
    page = parse(site / "ERRATA.html")
    assert "README.html#about-the-guide" in page.links
    assert "about-the-guide" in parse(site / "README.html").ids


def test_every_local_link_and_resource_resolves(site):
    missing = []
    pages = html_pages(site)
    assert len(pages) >= 20
    for path in pages:
        page = parse(path)
        for url in page.links + [u for _, u in page.loaded]:
            found = resolve(site, path, url)
            if found is None:
                continue
            target, fragment = found
            where = f"{path.relative_to(site)}: {url}"
            if not target.is_file():
                missing.append(where)
            elif not target.resolve().is_relative_to(site.resolve()):
                missing.append(where + " (outside the site)")
            elif fragment and target.suffix == ".html" and fragment not in parse(target).ids:
                missing.append(where + " (no such anchor)")
    assert not missing, "broken local links:\n" + "\n".join(missing[:40])


def test_no_page_or_stylesheet_loads_anything_remote(site):
    remote = []
    for path in html_pages(site):
        page = parse(path)
        where = path.relative_to(site)
        remote += [f"{where}: <{tag}> {url}" for tag, url in page.loaded if is_remote(url)]
        for style in page.styles:
            remote += [f"{where}: style url({u})" for u in css_urls(style) if is_remote(u)]
    for css in site.rglob("*.css"):
        for url in css_urls(css.read_text(encoding="utf-8", errors="replace")):
            if is_remote(url):
                remote.append(f"{css.relative_to(site)}: url({url})")
            else:
                found = resolve(site, css, url)
                if found and not found[0].is_file():
                    remote.append(f"{css.relative_to(site)}: url({url}) is missing")
    assert not remote, "resources from outside the site:\n" + "\n".join(remote[:40])


def test_search_index_finds_a_known_word_in_a_known_notebook(site):
    from sphinx.search.en import SearchEnglish

    text = (site / "searchindex.js").read_text(encoding="utf-8")
    m = re.fullmatch(r"\s*Search\.setIndex\((.*)\)\s*", text, re.S)
    assert m, "searchindex.js is not Search.setIndex({...})"
    index = json.loads(m.group(1))
    docnames = index["docnames"]
    assert KNOWN_PAGE in docnames
    stem = SearchEnglish({}).stem(KNOWN_WORD)
    # A word of a page's headings is kept under "titleterms" only, others under "terms"; the
    # search page looks in both. A page is one index or a list of them.
    hits = []
    for kind in ("terms", "titleterms"):
        found = index[kind].get(stem, [])
        hits += found if isinstance(found, list) else [found]
    assert hits, f"{KNOWN_WORD!r} ({stem!r}) is not in the search index"
    assert docnames.index(KNOWN_PAGE) in hits, [docnames[i] for i in hits]
    assert (site / "_static" / "searchtools.js").is_file()


def test_a_second_build_stages_nothing_new(site_module, tmp_path):
    """Staging rewrites only changed files (Sphinx rebuilds by modification time) and removes
    files that are no longer sources."""
    stage = tmp_path / "src"
    first = site_module.stage(stage)
    assert "index.md" in first and "ERRATA.md" in first and "README.md" in first
    stale = stage / "notebooks" / "99_gone.ipynb"
    stale.write_text("{}")
    mtimes = {p: p.stat().st_mtime_ns for p in stage.rglob("*") if p.is_file() and p != stale}
    time.sleep(0.01)
    assert site_module.stage(stage) == first
    assert not stale.exists()
    assert {p: p.stat().st_mtime_ns for p in stage.rglob("*") if p.is_file()} == mtimes


def test_home_page_links_only_notebooks_that_exist(site_module):
    cmap = {
        "notebook": [
            {
                "id": "01",
                "file": "01_a.ipynb",
                "title": "A | b",
                "status": "ready",
                "seed_sections": ["2.1"],
                "teach_minutes": 60,
                "run_time": {"ci": {"seconds": 75.0}},
            },
            {
                "id": "02",
                "file": "02_b.ipynb",
                "title": "B",
                "status": "planned",
                "seed_sections": [],
                "teach_minutes": 0,
                "run_time": {"ci": "not measured"},
            },
        ]
    }
    table = site_module.course_table(cmap, {"01_a.ipynb"})
    assert "[A \\| b](notebooks/01_a.ipynb)" in table
    assert "| 02 | B (planned) |" in table
    assert "1 min 15 s" in table and "not measured" in table


def test_course_tool_has_the_site_command():
    import course

    assert course.COMMANDS["site"] is course.cmd_site


# --------------------------------------------------------------------------- in a browser


@pytest.fixture(scope="module")
def site_url(site):
    """The site served over http on 127.0.0.1 (a free port) for the module's tests."""
    from browser import serve

    with serve(site) as url:
        yield url


def wait_for_mathjax(page) -> None:
    """Wait until MathJax has loaded and typeset the page (no-op on a page without maths)."""
    if not page.evaluate("() => document.querySelector('.math') !== null"):
        return
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
    page.evaluate("() => MathJax.startup.promise.then(() => true)")


def broken_images(page) -> list[str]:
    return page.evaluate(
        "() => Array.from(document.images)"
        ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )


def test_browser_home_page_lists_the_notebooks(browser, site_url):
    from browser import watch

    with watch(browser, "site-home") as w:
        w.page.goto(f"{site_url}/index.html", wait_until="networkidle")
        assert w.page.title().startswith("LLMs from the ground up")
        links = w.page.locator("article table a").evaluate_all(
            "els => els.map(e => e.getAttribute('href'))"
        )
        assert links == [f"notebooks/{stem}.html" for stem in course_notebooks()]
        nav = w.page.locator(".sidebar-tree a").all_inner_texts()
        assert any("Errata" in t for t in nav) and any("About the course" in t for t in nav)
        w.screenshot()
        w.page.locator("article table a").first.click()
        w.page.wait_for_load_state("networkidle")
        assert w.page.url.endswith(f"/notebooks/{course_notebooks()[0]}.html")
        w.assert_clean()


def test_browser_notebook_page_shows_figures_and_typeset_maths(browser, site_url):
    from browser import watch

    with watch(browser, "site-notebook") as w:
        page = w.page
        page.goto(f"{site_url}/{KNOWN_PAGE}.html", wait_until="networkidle")
        wait_for_mathjax(page)
        n_images = page.locator("div.cell_output img").count()
        assert n_images >= 1, "no figure on the page"
        assert not broken_images(page), broken_images(page)
        n_math = page.locator(".math").count()
        n_typeset = page.locator("mjx-container").count()
        assert n_math > 10 and n_typeset == n_math, (n_math, n_typeset)
        assert page.locator("mjx-container[display='true']").count() >= 1
        assert page.locator("mjx-merror").count() == 0, "MathJax could not typeset some TeX"
        # Rendered glyphs, not TeX source: MathJax hides the \( ... \) text it replaces.
        assert "\\(" not in page.locator("article").inner_text()
        page.locator("div.cell_output img").first.scroll_into_view_if_needed()
        w.screenshot("site-notebook-figure")
        page.locator("mjx-container[display='true']").first.scroll_into_view_if_needed()
        w.screenshot("site-notebook-equation")
        w.assert_clean()


def test_browser_search_finds_a_known_notebook(browser, site_url):
    from browser import watch

    with watch(browser, "site-search") as w:
        page = w.page
        page.goto(f"{site_url}/index.html", wait_until="networkidle")
        box = page.locator("input[name='q']").first
        box.fill(KNOWN_WORD)
        box.press("Enter")
        page.wait_for_url("**/search.html?q=*")
        page.wait_for_selector("#search-results ul.search li a")
        hrefs = page.locator("#search-results ul.search li a").evaluate_all(
            "els => els.map(e => e.getAttribute('href'))"
        )
        assert any(KNOWN_PAGE in (h or "") for h in hrefs), hrefs
        w.screenshot()
        w.assert_clean()


def test_browser_every_page_loads_cleanly(browser, site, site_url):
    """Every page of the site: loads with no console error and no request leaving localhost,
    every image decodes, every equation is typeset without a MathJax error."""
    from browser import watch

    problems = []
    with watch(browser, "site-every-page") as w:
        for path in html_pages(site):
            rel = path.relative_to(site).as_posix()
            w.page.goto(f"{site_url}/{rel}", wait_until="load")  # images are in by "load"
            wait_for_mathjax(w.page)
            problems += [f"{rel}: image {src} did not load" for src in broken_images(w.page)]
            if w.page.locator("mjx-merror").count():
                problems.append(f"{rel}: MathJax could not typeset some TeX")
            n_math = w.page.locator(".math").count()
            if n_math and w.page.locator("mjx-container").count() != n_math:
                problems.append(f"{rel}: not every equation was typeset")
        assert not problems, "\n".join(problems)
        w.assert_clean()
