"""Which models the course uses, where they come from, and loading W_E for the grader.

The model source is chosen once per course checkout (``python -m interp_course setup``) and
kept in the git-ignored ``course_settings.json``:
- ``hub``: the real checkpoints from the Hugging Face hub or the user's own HF cache;
- ``stand-ins``: tiny checkpoints an assignment builds (``grader_tests/<a>/standins.py``) in a local HF cache,
  for machines that cannot reach the hub. They are loaded under the real repo ids with
  ``HF_HUB_OFFLINE=1``, so the notebook runs the same code either way.

``INTERP_COURSE_HF_HOME=<dir>`` in the environment overrides the saved choice for one run: the
models come from that HF cache, offline (``make bench FULL_SIZE=1`` points it at the full-size
stand-ins). The grading account keeps it (``grader_user``), so every step sees the same source.

Basis: ``W_E`` is TransformerBridge's default, the raw Hugging Face ``wte`` weight. We never
call ``enable_compatibility_mode()``: it subtracts each token's mean over d_model, which is a
different operation from centering over the vocabulary (what an assignment may be about).
"""

from __future__ import annotations

import json
import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from interp_course.course import CHECKOUT

if TYPE_CHECKING:  # torch costs ~2 s to import: only the functions that load a model do
    import torch

# The model source belongs to the installation (this checkout), not to one course root.
SETTINGS_FILE = CHECKOUT / "course_settings.json"
STANDIN_HF_HOME = CHECKOUT / ".cache" / "standins"
FULL_SIZE_HF_HOME = CHECKOUT / ".cache" / "standins-full-size"  # built by `make bench FULL_SIZE=1`
HF_HOME_OVERRIDE = "INTERP_COURSE_HF_HOME"


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def read_settings() -> dict:
    """The model source: $INTERP_COURSE_HF_HOME if set, else the one chosen at set-up, else the hub."""
    override = os.environ.get(HF_HOME_OVERRIDE)
    if override:
        return {"model_source": "hf-home", "hf_home": override, "offline": True}
    if SETTINGS_FILE.is_file():
        return json.loads(SETTINGS_FILE.read_text())
    return {"model_source": "hub"}


def write_settings(model_source: str) -> dict:
    if model_source == "stand-ins":
        settings = {"model_source": "stand-ins", "hf_home": str(STANDIN_HF_HOME), "offline": True}
    elif model_source == "hub":
        settings = {"model_source": "hub"}
    else:
        raise ValueError(f"unknown model source {model_source!r}: use 'hub' or 'stand-ins'")
    SETTINGS_FILE.write_text(json.dumps(settings, indent=2) + "\n")
    return settings


def model_env(settings: dict | None = None) -> dict[str, str]:
    """Environment variables that make Hugging Face load from the chosen source."""
    settings = read_settings() if settings is None else settings
    env = {}
    if settings.get("hf_home"):
        env["HF_HOME"] = settings["hf_home"]
    if settings.get("offline"):
        # Without this an unreachable hub costs minutes of retries before failing.
        env["HF_HUB_OFFLINE"] = "1"
    return env


def describe_source(settings: dict | None = None) -> str:
    settings = read_settings() if settings is None else settings
    if settings.get("model_source") == "stand-ins":
        return f"stand-in models (tiny checkpoints with planted geometry) from {settings['hf_home']}"
    if settings.get("model_source") == "hf-home":
        return f"the models in the Hugging Face cache {settings['hf_home']} (${HF_HOME_OVERRIDE}), offline"
    return "the real models (Hugging Face hub or your HF cache)"


def apply_model_env(settings: dict | None = None) -> None:
    """Set the model source in this process; call before huggingface_hub is imported."""
    os.environ.update(model_env(settings))


def cache_folders(model_ids, settings: dict | None = None) -> tuple[Path, list[Path]]:
    """HF_HOME and each model's folder in its hub cache (``hub/models--<org>--<name>``).

    The grading sandbox binds just these folders, so nothing else under HF_HOME (such as the
    ``token`` that ``huggingface-cli login`` writes) is visible to student code.
    """
    settings = read_settings() if settings is None else settings
    hf_home = Path(model_env(settings).get("HF_HOME") or os.environ.get("HF_HOME")
                   or Path.home() / ".cache" / "huggingface")
    return hf_home, [hf_home / "hub" / ("models--" + model_id.replace("/", "--")) for model_id in model_ids]


W_E_CACHE = CHECKOUT / ".cache" / "w_e"


def revision(model_id: str, settings: dict | None = None) -> str | None:
    """The snapshot revision the model loads from (its HF cache ``refs/main``), if cached."""
    _, (folder,) = cache_folders([model_id], settings)
    try:
        return (folder / "refs" / "main").read_text().strip() or None
    except OSError:
        return None


@lru_cache(maxsize=None)
def load_W_E(model_id: str) -> torch.Tensor:
    """The model's token embedding [d_vocab, d_model] as a plain float32 CPU tensor.

    Booting TransformerBridge costs the grader 10-20 s (imports included), so W_E is kept per
    snapshot revision in ``.cache/w_e/``: a regrade whose runs are all cached starts no model.
    """
    import torch
    from safetensors.torch import load_file, save_file

    rev = revision(model_id)
    cached = W_E_CACHE / model_id.replace("/", "--") / f"{rev}.safetensors" if rev else None
    if cached is not None and cached.is_file():
        return load_file(str(cached))["W_E"]
    from transformer_lens.model_bridge import TransformerBridge

    model = TransformerBridge.boot_transformers(model_id, device="cpu")
    W_E = model.W_E.detach().to(torch.float32).clone().contiguous()
    if cached is not None:
        from safetensors import SafetensorError  # not an OSError: e.g. an unwritable folder

        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            save_file({"W_E": W_E}, str(tmp))
            tmp.chmod(0o644)  # safetensors writes 0600; the grader may run as another user
            os.replace(tmp, cached)
        except (OSError, SafetensorError):
            pass  # a read-only checkout: load from the model next time too
    return W_E


def load_embeddings(model_ids) -> dict[str, torch.Tensor]:
    """W_E of each model an assignment declares, keyed by model id."""
    return {model_id: load_W_E(model_id) for model_id in model_ids}
