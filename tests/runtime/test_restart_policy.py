from feeder.core.restart import RestartPolicy


def test_a_worker_that_ran_stably_is_restarted_at_once():
    p = RestartPolicy(stable_s=10)
    assert p.on_failure(now=100, started=0).delay_s == 0.0
    assert p.on_failure(now=200, started=101).delay_s == 0.0


def test_quick_successive_failures_back_off_up_to_the_cap():
    p = RestartPolicy(max_restarts=10, base_delay_s=0.25, max_delay_s=1.0, stable_s=10)
    delays = [p.on_failure(now=t, started=t - 1).delay_s for t in (1, 2, 3, 4, 5)]
    assert delays == [0.25, 0.5, 1.0, 1.0, 1.0]


def test_a_stable_run_resets_the_backoff():
    p = RestartPolicy(max_restarts=10, base_delay_s=0.25, stable_s=10)
    p.on_failure(now=1, started=0)
    p.on_failure(now=2, started=1.5)
    assert p.on_failure(now=30, started=3).delay_s == 0.0


def test_too_many_restarts_in_the_window_gives_up():
    p = RestartPolicy(max_restarts=3, window_s=60)
    assert not any(p.on_failure(now=t, started=t - 20).give_up for t in (20, 40, 50))
    assert p.on_failure(now=55, started=51).give_up


def test_old_restarts_leave_the_window():
    p = RestartPolicy(max_restarts=2, window_s=10)
    p.on_failure(now=20, started=0)
    p.on_failure(now=21, started=20.5)
    decision = p.on_failure(now=40, started=22)
    assert not decision.give_up and decision.delay_s == 0.0
