"""The committed reports (docs/study, docs/study-upper12, docs/study-paper, docs/study-bidir) regenerate from the committed results and items files, byte for byte.

This is what makes a refactor of study/ safe: any change to a number, a format or a section of the report shows up
here as a diff against the committed files. A deliberate change to the report regenerates docs/study with
`write_report("docs/study/results.json", "docs/study")` in the same commit. The report carries no date of its own
making (its dates are the study's, read from results.json), so the comparison is exact; the HTML page is compared
with its images taken out, because the PNG bytes depend on the matplotlib and freetype builds.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path

import pytest

from poolattn.study.report import write_report

DOCS = Path(__file__).resolve().parents[2] / "docs"
# the embedded study (3 seeds), the same with LoRA on the upper 12 layers for designs 4-5 (3 seeds), the paper's head
# recipe (one seed) and designs 1, 4, 5 run first on another CPU (3 seeds)
STUDIES = [DOCS / "study", DOCS / "study-upper12", DOCS / "study-paper", DOCS / "study-bidir"]
IMAGE = re.compile(r'src="data:image/png;base64,[A-Za-z0-9+/=]+"')


@pytest.fixture(scope="module", params=STUDIES, ids=lambda p: p.name)
def study(request) -> Path:
    return request.param


@pytest.fixture(scope="module")
def regenerated(study, tmp_path_factory) -> dict[str, Path]:
    return write_report(study / "results.json", tmp_path_factory.mktemp("regenerated"))


def _diff(committed: str, regenerated: str, name: str) -> str:
    lines = difflib.unified_diff(committed.splitlines(), regenerated.splitlines(), f"committed {name}",
                                 f"regenerated {name}", lineterm="", n=0)
    return "\n".join(list(lines)[:40])


def test_markdown_regenerates_byte_identical(study, regenerated):
    committed = (study / "report.md").read_text(encoding="utf-8")
    text = regenerated["markdown"].read_text(encoding="utf-8")
    assert text == committed, _diff(committed, text, "report.md")


def test_html_regenerates_identical_apart_from_image_bytes(study, regenerated):
    committed = IMAGE.sub('src="<png>"', (study / "report.html").read_text(encoding="utf-8"))
    page = IMAGE.sub('src="<png>"', regenerated["html"].read_text(encoding="utf-8"))
    assert page.count('src="<png>"') == 3
    assert page == committed, _diff(committed, page, "report.html")


def test_stats_json_regenerates_identical(study, regenerated):
    committed = json.loads((study / "stats.json").read_text(encoding="utf-8"))
    assert json.loads(regenerated["stats"].read_text(encoding="utf-8")) == committed
