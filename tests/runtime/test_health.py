from feeder.core.health import Candidate, ErrorWindow, HealthInputs, Router, score


def test_a_healthy_connected_worker_scores_100():
    assert score(HealthInputs(connected=True)) == 100


def test_a_disconnected_worker_scores_0_whatever_else():
    assert score(HealthInputs(connected=False, pending_requests=0)) == 0


def test_each_symptom_lowers_the_score_and_is_capped():
    base = score(HealthInputs(connected=True))
    assert score(HealthInputs(connected=True, pending_requests=2)) == base - 10
    assert score(HealthInputs(connected=True, pending_requests=100)) == base - 25
    assert score(HealthInputs(connected=True, latency_p99_ms=300)) == base - 10
    assert score(HealthInputs(connected=True, pressure="medium")) == base - 15
    assert score(HealthInputs(connected=True, heartbeat_misses=1)) == base - 15
    assert score(HealthInputs(connected=True, data_age_s=4)) == base - 10


def test_all_symptoms_together_never_go_below_zero():
    h = HealthInputs(True, 50, 5000, 10, "high", 5, 100)
    assert score(h) == 0


def test_errors_fade_linearly_over_sixty_seconds():
    w = ErrorWindow()
    w.record(100.0)
    assert w.weight(100.0) == 1.0
    assert abs(w.weight(130.0) - 0.5) < 1e-9
    assert w.weight(160.0) == 0.0


def test_router_prefers_the_best_score():
    r = Router()
    cands = [Candidate(0, 60, True), Candidate(1, 90, True), Candidate(2, 80, True)]
    assert {r.choose(cands, private=False) for _ in range(5)} == {1}


def test_router_round_robins_among_equal_scores():
    r = Router()
    cands = [Candidate(0, 90, True), Candidate(1, 90, True), Candidate(2, 10, True)]
    picks = [r.choose(cands, private=False) for _ in range(4)]
    assert sorted(set(picks)) == [0, 1] and picks[0] != picks[1]


def test_router_sends_private_methods_only_to_authenticated_workers():
    r = Router()
    cands = [Candidate(0, 100, False), Candidate(1, 40, True)]
    assert r.choose(cands, private=True) == 1
    assert r.choose(cands, private=False) == 0


def test_router_skips_excluded_and_zero_score_workers():
    r = Router()
    cands = [Candidate(0, 100, True), Candidate(1, 0, True)]
    assert r.choose(cands, private=False, exclude=frozenset({0})) is None
