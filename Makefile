# make demo      — set up, release, grade the bundled example submissions, print the table
# make test      — set up, then the whole test suite (fast unit tests first, then end to end)
# make test-fast — the unit tests of the pure parts (no kernel, no nbgrader run): seconds
# make grade     — autograde whatever is in submitted/, write feedback/ and grades.csv
#                  (exit status: the tool's is 0 all graded, 3 some not, 2 refused; make reports
#                  a failing one as "Error 3" or "Error 2" and itself exits 2)
# make collect ZIP=<download.zip> ROSTER=<roster.csv> — a Canvas bulk download into submitted/
#                  (ROSTER_COLUMN=<column> if student ids are not the roster's "SIS Login ID")
# make release   — regenerate release/ from source/ and record the course files grading checks
# make corpus    — regenerate grader_tests/<a>/submissions/ from grader_tests/<a>/corpus.py
# make verify-real — grade the reference solution on the real models (needs the hub or a cache)
# ASSIGNMENT=<a> limits release, grade and corpus to one assignment (default: all of them).

PY := .venv/bin/python
# auto: the real models when the Hugging Face hub answers, else the offline stand-ins.
MODEL_SOURCE ?= auto
ASSIGNMENT ?=
ASSIGNMENT_ARGS := $(if $(ASSIGNMENT),--assignment $(ASSIGNMENT))

.PHONY: setup demo test test-fast grade collect release corpus verify-real clean

.venv/.installed: pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	# The pinned CPU wheel first: an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .
	touch $@

/usr/bin/bwrap:
	@# The grading sandbox (Debian's bubblewrap); needs root, as in CI.
	apt-get update -qq && apt-get install -y -qq bubblewrap

/usr/bin/chromium:
	@# Headless Chromium: grading draws students' figures with it (in a sandbox), and the
	@# browser tests look at feedback pages as people see them.
	apt-get update -qq && apt-get install -y -qq chromium

/usr/bin/setfacl:
	@# Lets the unprivileged grading account pass through e.g. /root to a pyenv Python (acl).
	apt-get update -qq && apt-get install -y -qq acl

# As root, set-up also creates the grading account (interp-grader) and installs the nbgrader guard.
setup: .venv/.installed /usr/bin/bwrap /usr/bin/setfacl /usr/bin/chromium
	$(PY) -m interp_course setup --model-source $(MODEL_SOURCE)

demo: setup
	$(PY) -m interp_course demo

grade: setup
	$(PY) -m interp_course grade $(ASSIGNMENT_ARGS)

collect: setup
	$(PY) -m interp_course collect --zip "$(ZIP)" --roster "$(ROSTER)" $(ASSIGNMENT_ARGS) \
		$(if $(ROSTER_COLUMN),--roster-column "$(ROSTER_COLUMN)")

release: setup
	$(PY) -m interp_course release $(ASSIGNMENT_ARGS)

corpus: release
	$(PY) -m interp_course corpus $(ASSIGNMENT_ARGS)

verify-real: .venv/.installed
	$(PY) -m grader_tests.puzzle1.verify_real

test-fast: .venv/.installed
	$(PY) -m pytest tests/unit

test: setup
	$(PY) -m pytest tests/unit
	$(PY) -m pytest tests --ignore=tests/unit

clean:
	rm -rf submitted autograded feedback downloaded gradebook grades.csv course-manifest.json .cache course_settings.json
