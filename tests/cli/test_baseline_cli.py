"""`filterlake baseline` as a user runs it: the one-line summary, a re-run that adds nothing, one-line errors for
a misspelt or a timm architecture, and the list of names."""

from __future__ import annotations

import os
import re
import subprocess
import sys

FILTERLAKE = [sys.executable, "-m", "filterlake", "baseline"]
SUMMARY = re.compile(
    r"^2 sources: (\d) ingested, (\d) already present, 0 metadata updated, 0 failed; new: (\d+) layers, "
    r"([\d,]+) filters, \d+ layers skipped \(not 2-D 3x3\); [\d.]+ s$"
)


def run(tmp_path, *args):
    env = {
        **os.environ,
        "FILTERLAKE_CACHE": str(tmp_path / "cache"),
        "FILTERLAKE_LAKE": str(tmp_path / "lake"),
    }
    return subprocess.run(
        [*FILTERLAKE, *args], capture_output=True, text=True, env=env, check=False, cwd=tmp_path
    )


def test_the_summary_is_one_line_and_a_rerun_adds_nothing(tmp_path):
    first = run(tmp_path, "mobilenet_v3_small", "--seeds", "2", "-q")
    assert first.returncode == 0, first.stderr
    assert SUMMARY.match(first.stdout.strip()).groups()[:2] == ("2", "0")
    assert first.stdout.count("\n") == 1 and first.stderr.strip() == ""
    again = run(tmp_path, "MobileNet-V3-Small", "--seeds", "2")
    assert again.returncode == 0, again.stderr
    assert SUMMARY.match(again.stdout.strip()).groups() == ("0", "2", "0", "0")
    assert again.stderr.count("present  mobilenet_v3_small untrained, seed") == 2


def test_bad_names_fail_in_one_line(tmp_path):
    for name, says in (("resnet19", "unknown architecture"), ("timm:resnet18", "timm is not installed")):
        done = run(tmp_path, name)
        assert done.returncode == 1 and "Traceback" not in done.stderr
        [line] = done.stderr.strip().splitlines()
        assert line.startswith(f"filterlake: error: {name}: {says}") and "--list" in line
    assert not (tmp_path / "lake").exists()


def test_list_names_the_architectures(tmp_path):
    done = run(tmp_path, "--list")
    names = done.stdout.split("\n")
    assert done.returncode == 0 and {"resnet18", "vgg11", "mobilenet_v2", "unet"} <= set(names)
