"""`python -m flows.ingest` and `python -m flows.serve` as commands: help for every argument, one usage line
for a bad one, and a bad file named once in what the user reads."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

import pytest

from flows import analyze, cluster, ingest, serve
from tests.conftest import REPO
from tests.flows.conftest import BROKEN, flow_env

PARSERS = {
    "ingest": ingest.build_parser,
    "serve": serve.build_parser,
    "analyze": analyze.build_parser,
    "cluster": cluster.build_parser,
}


@pytest.mark.parametrize("command", PARSERS)
def test_help_explains_every_argument(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    parser = PARSERS[command]()
    for action in parser._actions:
        assert action.help and action.help != argparse.SUPPRESS, f"{action.dest} has no help"
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for action in parser._actions:
        assert (action.option_strings[-1] if action.option_strings else action.metavar) in text


@pytest.mark.parametrize(
    ("command", "argv", "says"),
    [
        ("ingest", [], "give a SOURCE or --catalog FILE"),
        ("ingest", ["--concurrency", "0", "x.pt"], "argument --concurrency: must be at least 1, got 0"),
        ("ingest", ["--concurrency", "two", "x.pt"], "argument --concurrency: not an integer: 'two'"),
        ("ingest", ["--bogus", "x.pt"], "unrecognized arguments: --bogus"),
        ("serve", [], "the following arguments are required: --watch"),
        ("serve", ["--watch", "d", "--interval", "0"], "must be a positive number of seconds, got 0"),
        ("serve", ["--watch", "d", "--interval", "soon"], "argument --interval: not a number: 'soon'"),
        ("serve", ["--watch", "d", "--cron", "every day"], "invalid cron expression 'every day'"),
        ("serve", ["--watch", "d", "--cron", "* * * * *", "--interval", "5"], "not allowed with argument"),
        ("serve", ["--watch", "d", "--name", "a/b"], "not a usable deployment name: 'a/b'"),
    ],
)
def test_a_bad_argument_is_one_usage_line_and_one_error_line(command, argv, says, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    module = {"ingest": ingest, "serve": serve}[command]
    with pytest.raises(SystemExit) as exit_:
        module.main(argv)
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    usage, error = captured.err.splitlines()
    assert usage.startswith(f"usage: python -m flows.{command} ")
    assert error.startswith(f"python -m flows.{command}: error: ") and says in error
    assert captured.out == ""


@pytest.mark.prefect
@pytest.mark.slow
def test_ingest_command_names_a_bad_file_once(one_good_one_bad, tmp_path, corpus):
    """A bad checkpoint (fails identify) and a good one with a bad sidecar (fails fetch), each said once."""
    shutil.copyfile(corpus / "mtcnn" / "onet.pt", one_good_one_bad / "onet.pt")
    (one_good_one_bad / "onet.pt.meta.json").write_text("{not json")
    lake = tmp_path / "lake"
    done = subprocess.run(
        [sys.executable, "-m", "flows.ingest", str(one_good_one_bad), "--lake", str(lake)],
        check=False,
        cwd=REPO,
        env=flow_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert said.count(BROKEN) == 1 and said.count("onet.pt.meta.json") == 1, said
    assert "Traceback" not in said and "ERROR" not in said and "NotReady" not in said, said
    lines = done.stdout.splitlines()
    assert lines[0].startswith(
        "3 sources: 1 ingested, 0 cached, 0 present, 0 updated, 2 failed; new: 3 layers"
    ), said
    bad_file = "unknown format: not ONNX, safetensors or a PyTorch checkpoint (by content)"
    bad_sidecar = (
        "not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"
    )
    assert lines[1:3] == [
        f"failed: {one_good_one_bad / BROKEN}: {bad_file}",
        f"failed: {one_good_one_bad / 'onet.pt.meta.json'}: {bad_sidecar}",
    ], said
    assert lines[3].startswith("refresh: basis "), said
