"""The one place the engine reaches into other libraries' internals.

Each patch is kept only because it measurably saves time on every batch, and each is written
against the pinned version named here (pyproject.toml): re-read the library's code it replaces, and
run its unit test and ``make bench``, when that pin moves. Nothing is applied on import: the
grader's processes call what they use.

=============================  =======================  ============================================
patch                          written against          measured (this machine, 2 cores, stand-ins)
=============================  =======================  ============================================
``lean_imports``: jsonschema   jsonschema 4.x with      1-3 s of start-up per nbgrader process and
goes without the optional      rfc3987-syntax 1.1       ~0.9 s of the zygote's imports; batch of 8,
"iri" grammars                                          two workers: 25.0 / 26.0 -> 23.7 / 24.8 s
``check_cell_metadata``:       nbgrader 0.9.6           ~0.09 s per notebook, twice per student in
nbgrader's cell-metadata                                each autograde pass: ~1.4 s of a batch of 8
check, its schema compiled                              (~6 %), and of every regrade
once per process
``gradebook_engine``: one      nbgrader 0.9.6           re-judging 32 kept runs (no kernel):
SQLAlchemy engine per          (``nbgrader.api``)       6.45 -> 5.2 s of the nbgrader pass; the
gradebook per process                                   whole regrade 12.6 / 13.4 -> 11.7 / 12.6 s
=============================  =======================  ============================================

Taken out, for want of a gain: a kernel client that skipped jupyter_client's 0.2 s wait for IOPub
to fall silent (with two workers a batch of 8 took 23.0 / 23.3 s before it and 23.2 / 23.1 s with
it: the cores were already busy).
"""
