"""The report in a real browser: headless Chromium loads every image and draws a non-blank page."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import numpy as np
import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]

# Runs on load: which images failed (naturalWidth 0), how much text there is, and whether sorting works.
PROBE = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; })
                   .map(function (i) { return i.getAttribute("src"); });
  var sorted = null, table = document.getElementById("t-by_domain");
  if (table) {
    var th = Array.prototype.slice.call(table.tHead.rows[0].cells)
                  .filter(function (c) { return c.textContent.trim() === "filters"; })[0];
    th.click();
    var col = th.cellIndex;
    var values = Array.prototype.slice.call(table.tBodies[0].rows)
                      .map(function (r) { return parseFloat(r.cells[col].getAttribute("data-v")); });
    sorted = values.every(function (v, i) { return i === 0 || values[i - 1] <= v; });
  }
  var out = document.createElement("pre");
  out.id = "probe-result";
  out.textContent = JSON.stringify({images: imgs.length, broken: broken, text: document.body.innerText.length,
                                    sorted: sorted});
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    """The chromium binary; installs Debian's package when it is missing (fails the test if that fails)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            done = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=900)
            if done.returncode:
                raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr[-2000:]}")
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"the browser test needs Chromium and could not install it with apt-get: {exc}")
    found = shutil.which("chromium")
    if not found:
        pytest.fail("apt-get installed chromium but no `chromium` binary is on PATH")
    return found


@pytest.fixture(scope="module")
def browser() -> str:
    return chromium()


def run(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={profile}", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.browser
def test_page_renders_with_every_image(built, browser, tmp_path):
    probe = built.out / "_probe.html"  # beside index.html so relative image paths resolve the same way
    probe.write_text(built.html().replace("</body>", PROBE + "</body>"), encoding="utf-8")
    try:
        dom = run(
            browser, tmp_path / "profile", "--virtual-time-budget=15000", "--dump-dom", probe.as_uri()
        ).stdout
    finally:
        probe.unlink()
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', dom, re.DOTALL)
    assert found, "the probe script did not run: " + dom[-1000:]
    result = json.loads(unescape(found.group(1)))
    assert result["images"] >= 8
    assert result["broken"] == [], f"images that did not load: {result['broken']}"
    assert result["text"] > 3000, "the page is (nearly) blank"
    assert result["sorted"] is True, "clicking a numeric header did not sort the table"


@pytest.mark.browser
def test_screenshot_is_not_blank(built, browser, tmp_path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    run(
        browser,
        tmp_path / "profile",
        "--window-size=1400,2400",
        f"--screenshot={shot}",
        built.report.index.as_uri(),
    )
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2400, 1400)
    assert pixels.std() > 10, "the screenshot is uniform"
    assert (pixels < 128).mean() > 0.01, "hardly any dark pixels: no text or figures drawn"
