"""The remembered runtime decision: per model, CPU and versions; damaged files are re-timed."""

from __future__ import annotations

import json

import pytest

from dropsight.daemon.runtime import decisions
from dropsight.daemon.runtime.choice import BASELINE, Candidate, Choice
from dropsight.daemon.runtime.decisions import Decision

ASKED = {"runtime": "auto", "device": "auto", "lanes": 1, "threads": 2, "batch": 16}
OV = {"openvino": "2026.4.1"}


def test_a_decision_round_trips_and_is_found_by_model() -> None:
    name = decisions.key("a" * 64, ASKED, OV)
    assert decisions.load(name) is None
    decision = Decision(
        "round-trip-model",  # the cache folder is shared by the run: a name of its own
        Choice(Candidate("openvino", "fp32"), 8.6, "fastest"),
        {"litert-fp32": {"batch_16": 7.0}},
    )
    decisions.save(name, decision)
    assert decisions.load(name) == decision
    assert decisions.remembered("round-trip-model") == [decision]
    assert decisions.remembered("another-model") == []
    assert not list(decisions.folder().glob("*.tmp*"))  # written atomically, nothing left over


def test_the_key_changes_with_model_cpu_versions_and_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = decisions.key("a" * 64, ASKED, OV)
    assert decisions.key("a" * 64, dict(ASKED), dict(OV)) == base
    assert decisions.key("b" * 64, ASKED, OV) != base
    assert decisions.key("a" * 64, ASKED, {"openvino": "2027.0"}) != base
    assert decisions.key("a" * 64, {**ASKED, "threads": 4}, OV) != base
    monkeypatch.setattr(decisions, "__version__", "9.9.9")
    assert decisions.key("a" * 64, ASKED, OV) != base
    monkeypatch.undo()
    cpu = decisions.cpu()
    monkeypatch.setattr(decisions, "cpu", lambda: {**cpu, "flags": cpu["flags"] + " amx_bf16"})
    assert decisions.key("a" * 64, ASKED, OV) != base


def test_this_machines_cpu_is_described() -> None:
    cpu = decisions.cpu()
    assert cpu["model"]
    with open("/proc/cpuinfo", encoding="utf-8") as f:  # noqa: PTH123
        if "flags" in f.read():
            assert "avx2" in cpu["flags"].split() or "sse2" in cpu["flags"].split()


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        json.dumps({"model": "m", "runtime": "onnx", "precision": "fp32", "device": "cpu"}),
        json.dumps(
            {
                "model": "m",
                "runtime": "litert",
                "precision": "fp32",
                "device": "cpu",
                "img_s": -1,
                "reason": "",
                "measured": {},
            }
        ),
        json.dumps({"model": "m"}),
        "x" * (decisions.MAX_BYTES + 1),
    ],
)
def test_a_damaged_decision_is_ignored_with_a_warning(
    content: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = decisions.key("c" * 64, ASKED, OV)
    decisions.folder().mkdir(parents=True, exist_ok=True)
    (decisions.folder() / f"{name}.json").write_text(content, "utf-8")
    assert decisions.load(name) is None
    assert "ignoring the runtime decision" in caplog.text
    # Saving replaces it.
    decisions.save(name, Decision("m", Choice(BASELINE, 1.0, "r"), {}))
    loaded = decisions.load(name)
    assert loaded is not None
    assert loaded.choice.candidate == BASELINE
