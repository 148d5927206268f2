# make demo  — set up, release, grade the bundled example submissions, print the table
# make test  — set up, then the test suite
# make grade — autograde whatever is in submitted/, write feedback/ and grades.csv
# make release — regenerate release/ from source/

PY := .venv/bin/python
# auto: the real models when the Hugging Face hub answers, else the offline stand-ins.
MODEL_SOURCE ?= auto

.PHONY: setup demo test grade release corpus clean

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

setup: .venv/.installed /usr/bin/bwrap
	$(PY) -m interp_course setup --model-source $(MODEL_SOURCE)

demo: setup
	$(PY) -m interp_course demo

grade: setup
	$(PY) -m interp_course grade

release: setup
	$(PY) -m interp_course release

# Rebuild grader_tests/submissions/ from grader_tests/corpus.py after changing either.
corpus: release
	$(PY) -m grader_tests.corpus

test: setup
	$(PY) -m pytest

clean:
	rm -rf submitted autograded feedback gradebook.db grades.csv .cache course_settings.json
