"""The benchmark's reading of the workers' progress lines and of the machine's CPU time (benchmarks.bench)."""

import math

from benchmarks.bench import PROGRESS, _cpu_jiffies, steady_rate


def test_progress_lines_give_the_runs_finished():
    assert int(PROGRESS.search("  [#########...............] 3/8+  7.8 s/notebook  ETA 0:39")[1]) == 3
    assert int(PROGRESS.search("  [########################] 8/8  4.0 s/notebook  ETA 0:00")[1]) == 8
    assert PROGRESS.search("Running the notebooks in the sandbox as they are planned: 2 worker(s)") is None


def test_the_steady_rate_starts_once_every_worker_has_finished_a_run():
    two = [(20.0, 1), (20.5, 2), (24.0, 3), (24.5, 4), (28.0, 5), (28.5, 6)]  # two workers, 4 s a run
    assert math.isclose(steady_rate(two, 2), 60 * 4 / 8.0)  # from the 2nd run (20.5 s) to the 6th
    one = [(20.0, 1), (24.0, 2), (28.0, 3)]
    assert math.isclose(steady_rate(one, 1), 60 * 2 / 8.0)
    assert math.isnan(steady_rate([(20.0, 1), (20.5, 2)], 2))  # no run after the first ones: no rate


def test_cpu_time_counts_this_process_spinning_as_busy():
    import time

    busy_before, all_before = _cpu_jiffies()
    end = time.process_time() + 0.3
    while time.process_time() < end:  # 0.3 s of CPU: ~30 jiffies busy
        pass
    busy_after, all_after = _cpu_jiffies()
    assert busy_after - busy_before >= 20
    assert 0 <= busy_after - busy_before <= all_after - all_before


def test_a_timed_command_gives_its_progress_its_output_and_its_memory_peak(tmp_path):
    import sys

    from benchmarks.bench import PeakSampler, _timed

    script = ("import time\n"
              "print('  [############............] 1/2  0.1 s/notebook  ETA 0:00', flush=True)\n"
              "block = bytearray(300 * 2**20)  # 300 MiB, written: resident\n"
              "time.sleep(0.6)\n"
              "print('  [########################] 2/2  0.1 s/notebook  ETA 0:00', flush=True)\n")
    finished, output, sampler = [], [], PeakSampler(cgroup_dir=None, interval=0.05)
    seconds = _timed([sys.executable, "-c", script], tmp_path, {}, finished, output=output, watch=sampler)
    assert [k for _, k in finished] == [1, 2]
    assert 0 < finished[0][0] <= finished[1][0] <= seconds
    assert "2/2" in output[-1]
    assert sampler.peak("other") >= 300 * 2**20  # the child's peak RSS, sampled while it ran
    assert not sampler.is_alive()
