"""Render the report in headless Chromium: every image loads and every table is present.

Skipped when Chromium is not installed, unless JEMKIT_REQUIRE_CHROMIUM=1 (as in .ci/run)."""
import base64
import json
import os
import shutil

import pytest

from jemkit.report import browser_check, write_report

needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None and os.environ.get("JEMKIT_REQUIRE_CHROMIUM") != "1",
    reason="Debian's chromium is not installed (apt-get install chromium)",
)


def _png(path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    fig.savefig(path)
    plt.close(fig)


@needs_chromium
def test_report_renders_with_every_image_and_table(tmp_path):
    m = {"dataset": "digits", "accuracy": 0.9, "calibration": {"ece": 0.05, "bins": 20},
         "ood": {"uniform": {"logp": 0.99}}, "baseline": {"accuracy": 0.8, "calibration": {"ece": 0.1, "bins": 20}}}
    (tmp_path / "metrics.json").write_text(json.dumps(m))
    for name in ("reliability.png", "baseline_reliability.png", "ood_histograms.png"):
        _png(tmp_path / name)
    html_path, _ = write_report(tmp_path)
    result = browser_check(html_path)
    assert result == {"images": 3, "loaded": 3, "tables": 1, "table_rows": 5, "title": "jemkit report"}


@needs_chromium
def test_browser_check_detects_a_broken_image(tmp_path):
    page = tmp_path / "broken.html"
    good = base64.b64encode((lambda p: (_png(p), p.read_bytes())[1])(tmp_path / "ok.png")).decode()
    page.write_text(f'<html><head><title>t</title></head><body><img src="data:image/png;base64,{good}">'
                    '<img src="data:image/png;base64,AAAAAAAA"><table><tr><td>1</td></tr></table></body></html>')
    result = browser_check(page)
    assert result["images"] == 2 and result["loaded"] == 1 and result["tables"] == 1
