"""Editing config.toml: comments and layout survive, bad values are refused unwritten."""

from __future__ import annotations

from pathlib import Path

import pytest

from dropsight.config.edit import set_value
from dropsight.config.settings import ConfigError, load

USER_FILE = """\
# Ana's Dropsight settings
[watch]
folders = ["~/Pictures/Phone"]  # the phone backup
settle_time_s = 3.0

[model]
top_k = 3 # enough for me
"""


def test_set_value_keeps_everything_else(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(USER_FILE, "utf-8")
    settings = set_value(path, "output", "xmp", "beside")
    assert settings.output.xmp == "beside"
    text = path.read_text("utf-8")
    assert text.startswith(USER_FILE)  # every line and comment as it was, new table appended
    assert load(path).output.xmp == "beside"
    set_value(path, "model", "top_k", 5)
    assert "top_k = 5 # enough for me" in path.read_text("utf-8")


def test_a_new_file_is_created_with_a_header(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "config.toml"
    path.parent.mkdir()
    set_value(path, "output", "xmp_name", "IMG.xmp")
    assert path.read_text("utf-8").startswith("# Dropsight configuration")
    assert load(path).output.xmp_name == "IMG.xmp"


@pytest.mark.parametrize(
    ("section", "key", "value", "words"),
    [
        ("output", "xmp", "sometimes", ["output.xmp", "off", "beside"]),
        ("output", "xmp_min_score", 3, ["output.xmp_min_score", "from 0 to 1"]),
        ("output", "colour", "red", ["output.colour"]),
    ],
)
def test_bad_values_are_refused_and_nothing_is_written(
    tmp_path: Path, section: str, key: str, value: object, words: list[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(USER_FILE, "utf-8")
    with pytest.raises(ConfigError) as caught:
        set_value(path, section, key, value)
    assert str(path) in str(caught.value)
    for word in words:
        assert word in str(caught.value)
    assert path.read_text("utf-8") == USER_FILE


def test_a_broken_file_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[watch\nfolders = 1\n", "utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        set_value(path, "output", "xmp", "beside")
    assert path.read_text("utf-8") == "[watch\nfolders = 1\n"
