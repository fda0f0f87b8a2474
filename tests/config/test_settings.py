"""Config loading: defaults, the documented default.toml, and exact error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from dropsight.config.settings import DEFAULT_TOML, ConfigError, Settings, load


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    assert load(tmp_path / "nope.toml") == Settings()


def test_documented_default_toml_equals_the_built_in_defaults() -> None:
    from dataclasses import replace

    assert replace(load(DEFAULT_TOML), source=None) == Settings()


def test_values_are_read_and_paths_expanded(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
[watch]
folders = ["~/Pictures", "/srv/photos"]
recursive = false
extensions = [".JPG", "png"]
observer = "polling"
[model]
name = "efficientnet-lite0"
top_k = 3
min_score = 0.05
resize = "squash"
[output]
mode = "folder"
folder = "/tmp/out"
[service]
log_level = "debug"
""",
    )
    s = load(path)
    assert s.source == path
    assert s.watch.folders == (Path.home() / "Pictures", Path("/srv/photos"))
    assert not s.watch.recursive
    assert s.watch.extensions == frozenset({"jpg", "png"})
    assert s.watch.observer == "polling"
    assert (s.model.name, s.model.top_k, s.model.min_score, s.model.resize) == (
        "efficientnet-lite0",
        3,
        0.05,
        "squash",
    )
    assert s.output.folder == Path("/tmp/out")
    assert s.service.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ('[model]\nname = "resnet"', ["model.name", "'resnet'", "'vgg16'", "'efficientnet-lite0'"]),
        ("[model]\ntop_k = 0", ["model.top_k", "from 1 to 1000"]),
        ('[model]\nruntime = "onnx"', ["model.runtime", "'onnx'", "'auto'", "'openvino'"]),
        ('[model]\ndevice = "tpu"', ["model.device", "'tpu'", "'gpu'", "'npu'"]),
        ("[model]\nruntime = 1", ["model.runtime", "'litert'"]),
        ('[model]\ntop_k = "5"', ["model.top_k", "an integer"]),
        ("[model]\nmin_score = 2", ["model.min_score", "from 0 to 1"]),
        ('[watch]\nobserver = "inotify"', ["watch.observer", "'auto'", "'polling'"]),
        ("[watch]\nfolders = 3", ["watch.folders", "list of non-empty strings"]),
        ("[watch]\nrecursive = 1", ["watch.recursive", "true or false"]),
        ("[watch]\nfoldrs = []", ["unknown key 'watch.foldrs'", "folders"]),
        ("[modle]\nname = 'vgg16'", ["unknown section [modle]"]),
        ('[output]\nmode = "folder"', ["output.folder must be set"]),
        ('[service]\nlog_level = "LOUD"', ["service.log_level", "DEBUG"]),
        ("[service]\nmax_file_mb = 0", ["service.max_file_mb", "an integer from 1 to 65536"]),
        ("[service]\nmax_decode_megapixels = 500", ["service.max_decode_megapixels", "1 to 178"]),
        ("[model\nname=", ["not valid TOML"]),
    ],
)
def test_invalid_values_name_file_key_and_what_is_allowed(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load(path)
    message = str(err.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_cli_reports_config_errors_with_exit_2(tmp_path: Path) -> None:
    from dropsight.daemon.cli.main import main

    path = _write(tmp_path, "[model]\ntop_k = -1")
    assert main(["service", "--config", str(path), "--watch", str(tmp_path)]) == 2
    assert main(["service", "--config", str(tmp_path / "missing.toml")]) == 2
