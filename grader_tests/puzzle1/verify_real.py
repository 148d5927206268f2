"""``make verify-real``: grade the reference solution on the real models, next to the original post.

The rest of the suite grades on tiny stand-ins. This runs the instructor's source notebook (its
reference solutions) in a Jupyter kernel against the real GPT-Neo-125M and GPT-2 small, where the
hidden test cells judge every answer in-process with the same checks as grading, and prints each
test cell's points and the headline numbers beside the ones the puzzle's original post reported
(measured in 2023 with TransformerLens 1.x/2.x ``HookedTransformer``, whose default weight processing
centres each token's row of W_E over d_model, on 5,000 tokens).

It needs the real checkpoints: from the Hugging Face hub, or already in your Hugging Face cache
(``HF_HOME``, default ``~/.cache/huggingface``; the course's stand-in cache is never used here).
Without either it says so in one line and exits 0, having checked nothing. Exit status 1 when a
check of the reference solution is not at full marks.

    python -m grader_tests.puzzle1.verify_real        # from the course root
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

from interp_course import models
from grader_tests.puzzle1.checks import GPT2, GPT_NEO
from interp_course.course import Course
from grader_tests.puzzle1.standins import STANDIN_MARKER

ASSIGNMENT = "puzzle1"
MODELS = (GPT_NEO, GPT2)
# (what, the notebook variable, the original post's number, the basis ours is in)
HEADLINES = [
    ("GPT-Neo mean pairwise cosine, 5,000 tokens", "neo_mean_cos", "> 0.9", "raw W_E"),
    ("GPT-Neo median cosine with the mean", "median_cos_with_mean", "≈ 0.95 (modal)", "raw W_E"),
    ("GPT-Neo, whole vocabulary", "neo_mean_cos_exact", "", "raw W_E"),
    ("GPT-Neo, whole vocabulary", "neo_per_token_centered_mean_cos", "> 0.9", "per-token centred (HT)"),
    ("GPT-Neo after subtracting the mean, 5,000 tokens", "neo_centered_mean_cos", "", "raw W_E"),
    ("GPT-2 small, whole vocabulary", "gpt2_mean_cos_exact", "", "raw W_E"),
    ("GPT-2 small, whole vocabulary", "gpt2_per_token_centered_mean_cos", "≈ 0.3", "per-token centred (HT)"),
    ("GPT-Neo |mean| / median token norm", "mean_to_token_norm", "", "raw W_E"),
    ("GPT-Neo share of ‖W_E‖² in its largest coordinate", "diagnostic_value", "", "raw W_E"),
]
VERDICT = re.compile(r"^(test_\w+): ([\d.]+) / ([\d.]+) points", re.M)


def _user_hf_home() -> Path:
    return Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")


def _cached(model_id: str, hf_home: Path) -> bool:
    """A real checkpoint (not one of the course's stand-ins) in this Hugging Face cache."""
    snapshots = hf_home / "hub" / ("models--" + model_id.replace("/", "--")) / "snapshots"
    for config in snapshots.glob("*/config.json"):
        try:
            if not json.loads(config.read_text()).get(STANDIN_MARKER):
                return True
        except (OSError, ValueError):
            continue
    return False


def source_of_models() -> str | None:
    """Where the real models come from, or None when they cannot be had."""
    hf_home = _user_hf_home()
    if hf_home.resolve() == models.STANDIN_HF_HOME.resolve():
        return None
    if all(_cached(model_id, hf_home) for model_id in MODELS):
        return f"the Hugging Face cache at {hf_home}"
    if models.hub_reachable():
        return "the Hugging Face hub"
    return None


def run_source_notebook(course: Course, offline: bool) -> dict:
    """Execute the source notebook on the real models; return its test verdicts and headline values."""
    import nbformat
    from nbclient import NotebookClient

    path = course.source(ASSIGNMENT) / f"{ASSIGNMENT}.ipynb"
    nb = nbformat.read(path, as_version=4)
    names = [name for _, name, _, _ in HEADLINES]
    nb.cells.append(nbformat.v4.new_code_cell(
        "import json\nprint('VERIFY-REAL ' + json.dumps({name: float(globals()[name]) for name in "
        f"{names!r} if name in globals()}}))"))
    env = {key: value for key, value in os.environ.items() if key not in ("HF_HUB_OFFLINE",)}
    env.update(TQDM_DISABLE="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    client = NotebookClient(nb, timeout=1800, allow_errors=True, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=env)
    text, errors = [], []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                text.append(output.get("text", ""))
            elif output.get("output_type") == "error":
                gid = cell.metadata.get("nbgrader", {}).get("grade_id", "?")
                errors.append(f"{gid}: {output.get('ename')}: {str(output.get('evalue', ''))[:200]}")
    text = "".join(text)
    values = {}
    for line in text.splitlines():
        if line.startswith("VERIFY-REAL "):
            values = json.loads(line[len("VERIFY-REAL "):])
    verdicts = {gid: (float(got), float(of)) for gid, got, of in VERDICT.findall(text)}
    return {"verdicts": verdicts, "values": values, "errors": errors, "text": text}


def report(result: dict, source: str, seconds: float) -> bool:
    verdicts, values = result["verdicts"], result["values"]
    print(f"verify-real: the reference solution on the real models, from {source} ({seconds:.0f} s)\n")
    print(f"  {'test cell':34}{'points':>12}")
    for gid, (got, of) in verdicts.items():
        print(f"  {gid:34}{got:>6g} / {of:<5g}{'' if got == of else '  <-- not full marks'}")
    got_total, of_total = sum(g for g, _ in verdicts.values()), sum(o for _, o in verdicts.values())
    print(f"  {'autograded total':34}{got_total:>6g} / {of_total:<5g}\n")
    print(f"  {'headline number':58}{'ours':>9}  {'original post':<16}basis of ours")
    for what, name, seed, basis in HEADLINES:
        ours = f"{values[name]:.4f}" if name in values else "missing"
        print(f"  {what:58}{ours:>9}  {seed:<16}{basis}")
    print("\n  The original post (2023) used TransformerLens 1.x/2.x HookedTransformer, whose default processing")
    print("  (center_writing_weights) subtracts each token's own mean over d_model: the rows marked HT above;")
    print("  ours are TransformerLens 4's raw W_E (TransformerBridge). Both models tie W_E to the unembedding.")
    for error in result["errors"]:
        print(f"  error in {error}")
    ok = bool(verdicts) and got_total == of_total and not result["errors"] and len(values) == len(HEADLINES)
    print(f"\nverify-real: {'all checks at full marks' if ok else 'FAILED'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    source = source_of_models()
    if source is None:
        print("verify-real: cannot run: the Hugging Face hub is unreachable and the real GPT-Neo-125M and "
              f"GPT-2 small are not in the Hugging Face cache ({_user_hf_home()}); nothing was checked.")
        return 0
    course = Course(Path(__file__).resolve().parents[2])
    start = time.perf_counter()
    result = run_source_notebook(course, offline=source != "the Hugging Face hub")
    return 0 if report(result, source, time.perf_counter() - start) else 1


if __name__ == "__main__":
    sys.exit(main())
