"""Model bookkeeping that needs no model: cache folders, revisions and the W_E cache."""

from __future__ import annotations

import torch
from safetensors.torch import save_file

from interp_course import models


def test_cache_folders_name_only_the_declared_models(tmp_path):
    settings = {"model_source": "stand-ins", "hf_home": str(tmp_path), "offline": True}
    hf_home, folders = models.cache_folders(["EleutherAI/gpt-neo-125M", "gpt2"], settings)
    assert hf_home == tmp_path
    assert folders == [tmp_path / "hub" / "models--EleutherAI--gpt-neo-125M", tmp_path / "hub" / "models--gpt2"]


def test_a_cached_W_E_is_loaded_without_booting_the_model(tmp_path, monkeypatch):
    settings = {"model_source": "stand-ins", "hf_home": str(tmp_path / "hf"), "offline": True}
    monkeypatch.setattr(models, "read_settings", lambda: settings)
    monkeypatch.setattr(models, "W_E_CACHE", tmp_path / "w_e")
    ref = tmp_path / "hf" / "hub" / "models--org--tiny" / "refs" / "main"
    ref.parent.mkdir(parents=True)
    ref.write_text("abc123")
    assert models.revision("org/tiny") == "abc123"
    (tmp_path / "w_e" / "org--tiny").mkdir(parents=True)
    save_file({"W_E": torch.eye(3)}, str(tmp_path / "w_e" / "org--tiny" / "abc123.safetensors"))
    models.load_W_E.cache_clear()
    try:
        assert torch.equal(models.load_W_E("org/tiny"), torch.eye(3))  # no such model exists to boot
    finally:
        models.load_W_E.cache_clear()


def test_INTERP_COURSE_HF_HOME_points_every_step_at_another_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(models.HF_HOME_OVERRIDE, str(tmp_path))
    assert models.model_env() == {"HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    assert models.cache_folders(["gpt2"]) == (tmp_path, [tmp_path / "hub" / "models--gpt2"])
    assert str(tmp_path) in models.describe_source()
    from interp_course.security import grader_user

    assert models.HF_HOME_OVERRIDE in grader_user._KEEP_ENV  # the grading account sees it too
