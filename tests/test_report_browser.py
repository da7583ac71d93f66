"""Render the report in headless Chromium: every image loads, every table is present, the promises table comes
first, sample grids are drawn large, and a screenshot shows the page.

Skipped when Chromium is not installed, unless JEMKIT_REQUIRE_CHROMIUM=1 (as in .ci/run)."""
import base64
import json
import os
import shutil

import pytest

from jemkit.report import browser_check, browser_screenshot, write_report

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


def _sample_grid(path):
    """A 10 × 10 grid of 28 × 28 images, 302 px wide, as the samples suite writes for Fashion-MNIST."""
    import torch

    from jemkit.images import save_grid

    save_grid(torch.rand(100, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1, path, nrow=10)


def _report(tmp_path):
    m = {"dataset": "digits", "accuracy": 0.9, "calibration": {"ece": 0.05, "bins": 20},
         "ood": {"uniform": {"logp": 0.99}}, "baseline": {"accuracy": 0.8, "calibration": {"ece": 0.1, "bins": 20}}}
    (tmp_path / "metrics.json").write_text(json.dumps(m))
    for name in ("reliability.png", "baseline_reliability.png", "ood_histograms.png"):
        _png(tmp_path / name)
    _sample_grid(tmp_path / "samples_class_conditional.png")
    return write_report(tmp_path)[0]


@needs_chromium
def test_report_renders_with_every_image_and_table(tmp_path):
    result = browser_check(_report(tmp_path), width=1200)
    widths = dict(result.pop("widths"))
    # promises (10 + header), the model's OOD matrix (1 + header), the raw keys (4 + header), folded
    assert result == {"images": 4, "loaded": 4, "tables": 3, "table_rows": 18, "first_table": "promises",
                      "folded": 1, "scripts": 0, "title": "jemkit report"}
    assert widths["model: class-conditional samples, fresh chains (one row per class)"] >= 400  # 302 px, scaled up
    assert widths["model: reliability"] == widths["baseline: reliability"] > 400  # side by side, half the page each


@needs_chromium
def test_report_screenshot_shows_the_promises_table_first(tmp_path):
    from PIL import Image

    shot = browser_screenshot(_report(tmp_path), tmp_path / "shot.png", size=(1200, 1600))
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 1600)
    top = image.crop((0, 0, 1200, 800))
    colours = dict((c, n) for n, c in top.getcolors(1200 * 800))
    assert colours.get((223, 240, 216), 0) > 500  # the green "yes" cells of the promises table, in the top half
    assert len(colours) > 20  # text, not a blank page


@needs_chromium
def test_browser_check_detects_a_broken_image(tmp_path):
    page = tmp_path / "broken.html"
    good = base64.b64encode((lambda p: (_png(p), p.read_bytes())[1])(tmp_path / "ok.png")).decode()
    page.write_text(f'<html><head><title>t</title></head><body><img src="data:image/png;base64,{good}">'
                    '<img src="data:image/png;base64,AAAAAAAA"><table><tr><td>1</td></tr></table></body></html>')
    result = browser_check(page)
    assert result["images"] == 2 and result["loaded"] == 1 and result["tables"] == 1
