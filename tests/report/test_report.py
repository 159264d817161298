"""The HTML report: self-contained, complete where stages ran, "not run" where not."""

import json
import re

import pytest

from connectomix.report import report
from connectomix.report._report import _fmt
from connectomix.synth import synthesize
from connectomix.testing._runs import docs_dir, need_browser, tiny_run


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    run = tiny_run(tmp_path_factory.mktemp("report") / "run", seed=3, shapes=True)
    return run, report(run.path)


def _no_external_resources(page: str):
    # nothing may load from the network: no src/href/url() to http(s) or protocol-relative URLs
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page, re.I)
    assert "<link rel=\"stylesheet\"" not in page
    assert not re.search(r"<script[^>]+src=", page, re.I)


def test_full_report_has_every_section_and_the_numbers(full_run):
    run, path = full_run
    assert path == run.path / "report" / "index.html"
    page = path.read_text()
    _no_external_resources(page)
    for section in ("overview", "stages", "config", "data", "slices", "evaluation", "shapes", "connectome", "viewer"):
        assert f'<section id="{section}">' in page
    assert "could not be made" not in page
    for stage in ("segment", "graph", "evaluate", "analyze", "shapes"):
        assert f"<b>{stage}: not run.</b>" not in page
    n_neurons = len(run.read_table("neurons"))
    assert f'<div class="v">{n_neurons}</div><div class="k">neurons</div>' in page
    scores = json.loads((run.path / "evaluation.json").read_text())
    assert f'<div class="v">{_fmt(scores["voi"])}</div><div class="k">voi</div>' in page
    assert "voi_split" in page and "synapse_f1" in page
    assert page.count("data:image/png;base64,") >= 5  # slices + the analysis figures
    assert '<canvas class="adjacency"' in page
    assert "connectomix view" in page and "connectomix export" in page
    stages = run.stages()
    assert "report" in set(stages["stage"]) and stages.set_index("stage").loc["report", "status"] == "finished"


def test_bare_run_says_not_run(tmp_path):
    run = synthesize(tmp_path / "bare", shape=(8, 136, 136), seed=0, preset="demo")
    page = report(run.path).read_text()
    _no_external_resources(page)
    for stage in ("segment", "evaluate", "graph", "analyze", "shapes"):
        assert f"<b>{stage}: not run.</b>" in page
    assert "could not be made" not in page
    assert "Not run in this run:" in page
    assert page.count("data:image/png;base64,") == 1  # the slice panels still show the EM


def test_a_broken_input_degrades_to_a_message(tmp_path):
    run = synthesize(tmp_path / "broken", shape=(8, 136, 136), seed=0, preset="demo")
    (run.path / "evaluation.json").write_text("{not json")
    (run.path / "analysis").mkdir()
    (run.path / "analysis" / "analysis.json").write_text("[]")
    page = report(run.path).read_text()
    assert "evaluation.json is unreadable" in page
    assert "could not be made" in page  # the broken analysis, reported in its section
    assert '<section id="viewer">' in page  # and the sections after it are still there


def test_report_in_headless_chromium(full_run):
    need_browser()
    from connectomix.viewer._browser import Browser

    run, path = full_run
    n_neurons = len(run.read_table("neurons"))
    with Browser(width=1280, height=900) as browser:
        browser.goto(path.resolve().as_uri())
        browser.pump(0.5)
        images = browser.evaluate(
            "Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])")
        assert len(images) >= 5
        for alt, complete, w, h in images:
            assert complete and w > 50 and h > 50, f"image {alt!r} did not render"
        # every canvas has drawn something that is not plain background
        canvases = browser.evaluate("""Array.from(document.querySelectorAll('canvas')).map(c => {
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let ink = 0;
            for (let i = 0; i < d.length; i += 4) if (d[i] < 240 || d[i + 1] < 240 || d[i + 2] < 240) ink++;
            return [c.width, c.height, ink];
        })""")
        assert canvases and all(w > 0 and h > 0 and ink > 100 for w, h, ink in canvases), canvases
        text = browser.evaluate("document.body.innerText")
        assert "connectomix run: run" in text
        assert f"{n_neurons}\nNEURONS" in text.upper().replace("\r", "")
        assert "VOI_SPLIT" in text.upper() and "SYNAPSE_F1" in text.upper()
        # sortable: clicking 'rows' in the tables table sorts it by row count
        before = browser.evaluate("Array.from(document.querySelectorAll('#tables tbody tr td:nth-child(2)'))"
                                  ".map(td => Number(td.dataset.v))")
        browser.evaluate("document.querySelector('#tables thead th:nth-child(2)').click()")
        after = browser.evaluate("Array.from(document.querySelectorAll('#tables tbody tr td:nth-child(2)'))"
                                 ".map(td => Number(td.dataset.v))")
        assert after == sorted(before)
        png = browser.screenshot(full_page=True)
        assert browser.console_errors == [], browser.console_errors
    out = docs_dir()
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.png").write_bytes(png)
