"""Atomic writes: a failure halfway never leaves a partial file where programs read it."""

import json
import os

import pytest

from tss_keras import files


def test_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = str(tmp_path / "run_config.json")
    files.write_json(path, {"version": 1})

    def broken_dump(data, f, **kwargs):
        f.write('{"version": 2, "trunc')  # half a file, then the crash
        raise OSError("disk full")

    monkeypatch.setattr(files.json, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        files.write_json(path, {"version": 2})
    assert json.load(open(path)) == {"version": 1}
    assert os.listdir(tmp_path) == ["run_config.json"]


def test_write_json_creates_folders_and_replaces(tmp_path):
    path = str(tmp_path / "a" / "b" / "parity_1.json")
    files.write_json(path, {"passed": False})
    files.write_json(path, {"passed": True})
    assert json.load(open(path)) == {"passed": True}
