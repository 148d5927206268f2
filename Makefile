# make help       — this list
# make setup      — once: venv, bubblewrap, grading account, cgroup, model source (MODEL_SOURCE=auto|stand-ins|hub)
# make demo       — set up, release, grade the bundled example students, print the table
# make release    — regenerate release/ from source/ and record the course files grading checks
# make collect    — a Canvas bulk download into submitted/ (ZIP=<download.zip> ROSTER=<roster.csv>)
# make grade      — autograde submitted/; feedback/, grades.csv, grades_by_question.csv (exit 0 / 3 some not / 2 refused)
# make formgrader — grade by hand: formgrader on 127.0.0.1 as the grading account (PORT=8899, ROSTER= names)
# make refresh    — after grading by hand: feedback/, grades.csv and grades_by_question.csv again, together
# make canvas     — an assignment's scores as a CSV for Canvas's gradebook import (ROSTER=<roster.csv>)
# make corpus     — regenerate grader_tests/<a>/submissions/ from grader_tests/<a>/corpus.py
# make verify-real — grade the reference solution on the real models (needs the hub or a cache)
# make bench      — seconds per submission of `make grade` beside stock nbgrader's (N=8; FULL_SIZE=1: real scale)
# make test-fast  — the unit tests (no kernel, no nbgrader run): under a minute
# make test       — set up, then the whole test suite (unit, then end to end)
# make clean      — remove grading state: submitted/, autograded/, feedback/, gradebook/, CSVs, settings
# Options (docs/instructors.md): ASSIGNMENT=<a>, WORKERS=N, SCHEDULER=tcp://HOST:PORT, NO_CACHE=1,
# RERUN_FAULTED=1, STUDENTS="id1 id2", TIME_LIMIT=45m, ALLOW_NO_CGROUP=1; collect: ROSTER_COLUMN=; canvas: COLUMN=, ROSTER_COLUMN=, OUT=.
# Only setup, demo and test set up: the others refuse (exit 2) until `make setup` has run.

PY := .venv/bin/python
# auto: the real models when the Hugging Face hub answers, else the offline stand-ins.
MODEL_SOURCE ?= auto
ASSIGNMENT ?=
ASSIGNMENT_ARGS := $(if $(ASSIGNMENT),--assignment $(ASSIGNMENT))
# make grade WORKERS=N (default: the cores) SCHEDULER=tcp://HOST:PORT (Dask) NO_CACHE=1 (run all again)
# RERUN_FAULTED=1 (run again the notebooks whose kept run's kernel faulted) TIME_LIMIT=45m (start no run after)
BATCH_ARGS := $(if $(WORKERS),--workers $(WORKERS)) $(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(if $(NO_CACHE),--no-cache) \
	$(if $(RERUN_FAULTED),--rerun-faulted) $(foreach s,$(STUDENTS),--student $(s)) \
	$(if $(TIME_LIMIT),--time-limit $(TIME_LIMIT))

.PHONY: help setup demo test test-fast grade refresh collect canvas release corpus verify-real bench formgrader clean

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
	$(PY) -m interp_course demo $(BATCH_ARGS)

grade: .venv/.installed
	$(PY) -m interp_course grade $(ASSIGNMENT_ARGS) $(BATCH_ARGS)

collect: .venv/.installed
	$(PY) -m interp_course collect --zip "$(ZIP)" --roster "$(ROSTER)" $(ASSIGNMENT_ARGS) \
		$(if $(ROSTER_COLUMN),--roster-column "$(ROSTER_COLUMN)")

canvas: .venv/.installed
	$(PY) -m interp_course canvas --roster "$(ROSTER)" $(ASSIGNMENT_ARGS) $(if $(COLUMN),--column "$(COLUMN)") \
		$(if $(ROSTER_COLUMN),--roster-column "$(ROSTER_COLUMN)") $(if $(OUT),--out "$(OUT)")

release: .venv/.installed
	$(PY) -m interp_course release $(ASSIGNMENT_ARGS)

corpus: release
	$(PY) -m interp_course corpus $(ASSIGNMENT_ARGS)

formgrader: .venv/.installed
	$(PY) -m interp_course formgrader --port $(or $(PORT),8899) $(if $(ROSTER),--roster "$(ROSTER)")

refresh: .venv/.installed
	$(PY) -m interp_course refresh $(ASSIGNMENT_ARGS)

verify-real: .venv/.installed
	$(PY) -m grader_tests.puzzle1.verify_real

bench: setup
	$(PY) -m benchmarks.bench $(if $(N),--submissions $(N)) $(if $(FULL_SIZE),--full-size) \
		$(if $(FULL_SIZE_HF_HOME),--hf-home $(FULL_SIZE_HF_HOME))

test-fast: .venv/.installed
	$(PY) -m pytest tests/unit

test: setup
	$(PY) -m pytest tests/unit
	@# End to end on two processes (a file stays on one; see tests/conftest.py), then the tests
	@# that need the machine to themselves.
	$(PY) -m pytest tests --ignore=tests/unit -n 2 --dist loadscope -m "not alone" --durations=30
	$(PY) -m pytest tests --ignore=tests/unit -m alone

help:
	@sed -n 's/^# //p; /^$$/q' Makefile

clean:
	rm -rf submitted autograded feedback downloaded gradebook logs grades.csv grades_by_question.csv points_possible.csv canvas_grades.csv \
		course-manifest.json .cache course_settings.json
