from feeder.core.restart import RestartPolicy


def test_first_restart_is_immediate_then_backs_off():
    p = RestartPolicy(max_restarts=5, window_s=60, base_delay_s=0.25, max_delay_s=1.0)
    delays = [p.on_failure(t).delay_s for t in (0, 1, 2, 3)]
    assert delays == [0.0, 0.25, 0.5, 1.0]


def test_too_many_restarts_in_the_window_gives_up():
    p = RestartPolicy(max_restarts=3, window_s=60)
    assert not any(p.on_failure(t).give_up for t in (0, 1, 2))
    assert p.on_failure(3).give_up


def test_old_restarts_leave_the_window():
    p = RestartPolicy(max_restarts=2, window_s=10)
    p.on_failure(0)
    p.on_failure(1)
    decision = p.on_failure(20)
    assert not decision.give_up and decision.delay_s == 0.0
