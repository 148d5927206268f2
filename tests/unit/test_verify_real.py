"""`make verify-real` where the real models cannot be had: one line, nothing checked, exit 0."""

from __future__ import annotations

from grader_tests.puzzle1 import verify_real
from interp_course import models


def test_without_hub_or_cached_models_it_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(models, "hub_reachable", lambda *args, **kwargs: False)
    assert verify_real.main() == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("verify-real: cannot run")
    assert "nothing was checked" in out


def test_the_course_stand_ins_never_count_as_the_real_models(monkeypatch):
    monkeypatch.setenv("HF_HOME", str(models.STANDIN_HF_HOME))
    monkeypatch.setattr(models, "hub_reachable", lambda *args, **kwargs: True)
    assert verify_real.source_of_models() is None


def test_a_cache_holding_only_stand_in_snapshots_is_not_the_real_models(tmp_path):
    for model_id in verify_real.MODELS:
        snapshot = tmp_path / "hub" / ("models--" + model_id.replace("/", "--")) / "snapshots" / "abc"
        snapshot.mkdir(parents=True)
        (snapshot / "config.json").write_text('{"interp_course_stand_in": true}')
    assert not any(verify_real._cached(model_id, tmp_path) for model_id in verify_real.MODELS)
    (snapshot / "config.json").write_text('{"model_type": "gpt2"}')
    assert verify_real._cached(verify_real.MODELS[-1], tmp_path)
