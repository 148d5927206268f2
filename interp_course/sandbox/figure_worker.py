"""Draw plotly figures as PNG files: the program ``interp_course.sandbox.figures`` runs in a sandbox.

``python -m interp_course.sandbox.figure_worker IN OUT WIDTH HEIGHT`` reads ``IN/<n>.json`` (plotly
figure dicts, in the order of their names) and writes ``OUT/<n>.png`` with kaleido, one
headless Chromium for all of them. A figure that fails is skipped; the grader notes it.

Nothing here is trusted by the grader: it runs on student data, in a bubblewrap sandbox with no
network, and the grader checks every file it leaves before using it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

# Debian's chromium (BROWSER_PATH overrides); the /usr/bin/chromium wrapper script reads
# /etc/chromium.d, which the sandbox does not have.
CHROMIUM = "/usr/lib/chromium/chromium"


async def draw(folder_in: Path, folder_out: Path, width: int, height: int) -> None:
    import kaleido

    names = sorted((p for p in folder_in.glob("*.json")), key=lambda p: int(p.stem))
    # mathjax=False: kaleido would load MathJax from a CDN; the page has no network anyway.
    # Chromium's own sandbox needs user namespaces, which bubblewrap has already used and
    # disabled; kaleido starts it with --no-sandbox, --disable-gpu and --headless.
    async with kaleido.Kaleido(n=1, timeout=30, mathjax=False, path=os.environ.get("BROWSER_PATH", CHROMIUM)) as k:
        for path in names:
            try:
                fig = json.loads(path.read_text())
                png = await k.calc_fig(fig, opts={"format": "png", "width": width, "height": height, "scale": 1})
            except Exception as exc:  # noqa: BLE001 - one bad figure must not cost the others
                print(f"figure {path.stem}: {type(exc).__name__}", file=sys.stderr)
                continue
            (folder_out / f"{path.stem}.png").write_bytes(png)


def main(argv: list[str]) -> None:
    folder_in, folder_out, width, height = Path(argv[0]), Path(argv[1]), int(argv[2]), int(argv[3])
    asyncio.run(draw(folder_in, folder_out, width, height))


if __name__ == "__main__":
    main(sys.argv[1:])
