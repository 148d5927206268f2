"""The feedback and formgrader pages of an attack notebook, opened in headless Chromium.

Each attack in ``inert_attacks`` that runs marks the page's <html> element (seen in the dumped
DOM) and fetches a beacon from a loopback server this test counts. Chromium reaches only that
server: every other host fails to resolve and every other request goes to a dead proxy.

First the stock pages: the attacks must be seen running there, or the harness proves nothing.
Then the same notebook made inert by SanitizeSubmission (as autograde stores it) and rendered by
stock nbgrader, and the raw notebook rendered under the course's nbgrader_config.py (as
generate_feedback and formgrader render anything, old notebooks included): nothing may run.
"""

from __future__ import annotations

import http.server
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup

from inert_attacks import attack_notebook, render, students_live_content
from interp_course.preprocessors.sanitize_submission import SanitizeSubmission

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
# Attacks seen running on nbgrader's stock pages with Chromium 156 (Debian 12). Not among them:
# those needing a click (javascript: links), the width metadata with quotes (escaped), SVG
# output (nbconvert shows it through <img>), the attachment and the raw cell (not rendered).
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
RUN_ON_STOCK = {1, 2, 3, 4, 5, 6, 7, 8, 11, 14, 20, 21, 23, 24}
FETCH_ONLY_ON_STOCK = {9, 10}  # run in an opaque-origin frame: can fetch, cannot touch the page


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.pages: dict[str, str] = {}
        self.beacons: list[int] = []

    @property
    def url(self) -> str:
        return f"http://localhost:{self.server_address[1]}/"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        name = self.path.lstrip("/")
        if name.startswith("beacon/"):
            self.server.beacons.append(int(name.split("/")[1]))
        if name in self.server.pages:
            body = self.server.pages[name].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inert-screenshots")
    print(f"\nScreenshots of the pages: {folder}")
    return folder


def chromium_command(url: str, profile: Path, *output: str) -> list[str]:
    return [
        CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage",
        f"--user-data-dir={profile}", "--no-first-run", "--disable-extensions",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        # networking off but for the loopback server: no name resolves but localhost, and
        # anything else (an IP address) goes to a proxy that is not there
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost", "--proxy-server=127.0.0.1:9",
        "--virtual-time-budget=5000",  # timers and load events get their chance
        *output, url,
    ]


def open_page(server, name: str, html: str, tmp_path: Path, screenshots: Path | None = None):
    """(attacks that marked the page, attacks whose beacon arrived, the page's DOM)."""
    server.pages[name] = html
    server.beacons.clear()
    url = server.url + name
    dom = subprocess.run(chromium_command(url, tmp_path / f"profile-{name}", "--dump-dom"),
                         capture_output=True, text=True, timeout=180)
    assert "<html" in dom.stdout, dom.stderr[-2000:]
    if screenshots is not None:
        subprocess.run(chromium_command(url, tmp_path / f"profile-{name}-shot", "--window-size=1000,2600",
                                        f"--screenshot={screenshots / (name + '.png')}"),
                       capture_output=True, timeout=180)
    html_tag = BeautifulSoup(dom.stdout, "html.parser").find("html")
    fired = {int(m) for a in html_tag.attrs for m in re.findall(r"^data-pwned-(\d+)$", a)}
    return fired, set(server.beacons), dom.stdout


def shows_ordinary_content(dom: str) -> None:
    """The page really rendered the notebook (an empty page would pass trivially)."""
    text = BeautifulSoup(dom, "html.parser").get_text()
    for kept in ("bold result", "0.93", "Why it happens", "plain text result"):
        assert kept in text, kept


@needs_chromium
@pytest.mark.parametrize("template", ["feedback", "formgrade"])
def test_attacks_run_on_the_stock_pages(server, tmp_path, template):
    nb, _ = attack_notebook(server.url + "beacon/", schema_breaking=False)
    fired, beacons, dom = open_page(server, f"stock-{template}.html", render(template, nb), tmp_path)
    print(f"stock {template}: marked by {sorted(fired)}, beacons from {sorted(beacons)}")
    assert fired >= RUN_ON_STOCK
    assert beacons >= RUN_ON_STOCK | FETCH_ONLY_ON_STOCK


@needs_chromium
@pytest.mark.parametrize("template", ["feedback", "formgrade"])
def test_nothing_runs_once_sanitized(server, tmp_path, screenshots, template):
    """The notebook as autograde stores it, rendered by nbgrader as it comes."""
    nb, _ = attack_notebook(server.url + "beacon/")
    SanitizeSubmission()(nb, {})  # as an exporter runs it: honours `enabled`
    fired, beacons, dom = open_page(server, f"sanitized-{template}.html", render(template, nb), tmp_path, screenshots)
    assert (fired, beacons) == (set(), set())
    shows_ordinary_content(dom)


@pytest.fixture(scope="module")
def rendered_by_course_config(server, tmp_path_factory):
    """The raw attack notebook rendered under nbgrader_config.py, in a fresh process."""
    folder = tmp_path_factory.mktemp("course-config")
    nb, _ = attack_notebook(server.url + "beacon/", schema_breaking=False)
    nbformat.write(nb, folder / "attacks.ipynb")
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "inert_attacks.py"), str(folder / "attacks.ipynb"),
                           str(folder)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return {name: (folder / f"{name}.html").read_text()
            for name in ("feedback", "formgrade", "feedback-empty", "formgrade-empty")}


@pytest.mark.parametrize("template", ["feedback", "formgrade"])
def test_course_config_renders_a_raw_notebook_without_live_content(rendered_by_course_config, template):
    """The wiring in nbgrader_config.py, checked without a browser: it loads, and the pages
    generate_feedback and formgrader make from the raw attack notebook carry nothing live."""
    page, empty = rendered_by_course_config[template], rendered_by_course_config[f"{template}-empty"]
    assert students_live_content(page, empty) == []


@needs_chromium
@pytest.mark.parametrize("template", ["feedback", "formgrade"])
def test_nothing_runs_when_the_course_config_renders_a_raw_notebook(
    server, tmp_path, screenshots, rendered_by_course_config, template
):
    """generate_feedback and formgrader read nbgrader_config.py: they sanitize as they render."""
    html = rendered_by_course_config[template]
    fired, beacons, dom = open_page(server, f"config-{template}.html", html, tmp_path, screenshots)
    assert (fired, beacons) == (set(), set())
    shows_ordinary_content(dom)

