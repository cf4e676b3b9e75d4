"""Unit tests of injection protocols in time (sim.protocol): segments, boundaries, start-after.

Needles are built from scenario sections (sim.scenario.injection.Needle) so that units and
the schema's expansion of aliquots are those of a scenario file. Pure Python: runs serially
and under ``mpirun -n 2``.
"""

from __future__ import annotations

from typing import Any

import pytest

from sim.protocol import Injector, NeedleProtocol, Segment
from sim.scenario.injection import Needle

ML = 1e-6  # m^3
ML_PER_MIN = 1e-6 / 60.0  # m^3/s
HAND = {"syringe_pressure": "1 MPa", "volume": "1 mL", "max_rate": "6 mL/min"}  # by hand


def needle(name: str = "needle", **protocol: Any) -> Needle:
    return Needle.model_validate({"name": name, "inner_diameter": "2 mm", **protocol})


def boundaries(p: NeedleProtocol | Injector, t: float = 0.0) -> list[float]:
    """Every time next_change returns, from t on, until it returns None."""
    out: list[float] = []
    while (t := p.next_change(t)) is not None:  # type: ignore[assignment]
        out.append(t)
        assert len(out) < 100
    return out


# --- constant rate -------------------------------------------------------------------------


def test_constant_rate_is_one_segment() -> None:
    p = NeedleProtocol(needle(rate="3 mL/min", volume="4 mL"))
    assert len(p.segments) == 1
    seg = p.segments[0]
    assert (seg.begin, seg.rate) == (0.0, 5e-8)
    assert seg.end == pytest.approx(80.0, rel=1e-14)
    assert p.started_at == 0.0
    assert p.finished_at is None
    assert not p.pressure_controlled
    assert p.target_volume == 4e-6


def test_constant_rate_finishes_at_volume_over_rate() -> None:
    p = NeedleProtocol(needle(rate="3 mL/min", volume="4 mL"))
    assert p.scheduled_rate(0.0) == 5e-8
    assert p.scheduled_rate(79.0) == 5e-8
    assert boundaries(p) == [pytest.approx(80.0, rel=1e-14)]
    # inject in steps of 20 s: finished at the end of the fourth
    for k in range(1, 5):
        p.account(20.0 * k, p.scheduled_rate(20.0 * (k - 1)), 20.0)
        assert (p.finished_at is not None) == (k == 4)
    assert p.finished_at == 80.0
    assert p.injected == pytest.approx(4e-6, rel=1e-14)
    assert not p.active(80.0)
    assert p.scheduled_rate(80.0) == 0.0
    assert p.next_change(0.0) is None  # finished


def test_delayed_start() -> None:
    p = NeedleProtocol(needle(rate="3 mL/min", volume="4 mL", start="30 s"))
    assert p.started_at == 30.0
    assert not p.active(29.0)
    assert p.scheduled_rate(29.0) == 0.0
    assert p.scheduled_rate(30.0) == 5e-8
    assert boundaries(p) == [30.0, pytest.approx(110.0, rel=1e-14)]
    assert Injector([p.spec]).planned_end() == pytest.approx(110.0, rel=1e-14)


# --- schedules and aliquots ----------------------------------------------------------------


def test_aliquots_expand_to_segments_with_pauses() -> None:
    # 3 x 1 mL at 2 mL/min (30 s each) with 20 s between
    p = NeedleProtocol(
        needle(aliquots={"volume": "1 mL", "count": 3, "rate": "2 mL/min", "pause": "20 s"})
    )
    rate = 2 * ML_PER_MIN
    expected = [(0.0, 30.0), (50.0, 80.0), (100.0, 130.0)]
    assert len(p.segments) == 3
    for seg, (begin, end) in zip(p.segments, expected, strict=True):
        assert seg.begin == pytest.approx(begin, rel=1e-14, abs=1e-14)
        assert seg.end == pytest.approx(end, rel=1e-14)
        assert seg.rate == pytest.approx(rate, rel=1e-14)
    assert p.target_volume == pytest.approx(3 * ML, rel=1e-14)
    # injecting, pausing, injecting ...
    for t, r in [(0.0, rate), (29.0, rate), (30.0, 0.0), (49.0, 0.0), (50.0, rate), (131.0, 0.0)]:
        assert p.scheduled_rate(t) == pytest.approx(r, rel=1e-14), t


def test_aliquots_equal_the_explicit_schedule() -> None:
    aliquots = NeedleProtocol(
        needle(aliquots={"volume": "1 mL", "count": 3, "rate": "2 mL/min", "pause": "20 s"})
    )
    step = {"rate": "2 mL/min", "volume": "1 mL"}
    schedule = NeedleProtocol(
        needle(schedule=[step, {"pause": "20 s"}, step, {"pause": "20 s"}, step])
    )
    assert aliquots.segments == schedule.segments


def test_aliquots_without_pause_are_back_to_back() -> None:
    p = NeedleProtocol(
        needle(aliquots={"volume": "1 mL", "count": 2, "rate": "2 mL/min", "pause": 0})
    )
    assert [(s.begin, s.end) for s in p.segments] == [
        (0.0, pytest.approx(30.0)),
        (pytest.approx(30.0), pytest.approx(60.0)),
    ]


def test_schedule_of_rates_and_pauses() -> None:
    p = NeedleProtocol(
        needle(
            schedule=[
                {"pause": "10 s"},
                {"rate": "1 mL/min", "volume": "0.5 mL"},  # 30 s
                {"rate": "3 mL/min", "volume": "1.5 mL"},  # 30 s
                {"pause": "1 min"},
                {"rate": "6 mL/min", "volume": "1 mL"},  # 10 s
            ]
        )
    )
    got = [(s.begin, s.end, s.rate) for s in p.segments]
    expected = [(10, 40, 1), (40, 70, 3), (130, 140, 6)]
    assert len(got) == len(expected)
    for (b, e, r), (eb, ee, er) in zip(got, expected, strict=True):
        assert (b, e) == (pytest.approx(eb, rel=1e-14), pytest.approx(ee, rel=1e-14))
        assert r == pytest.approx(er * ML_PER_MIN, rel=1e-14)
    assert p.target_volume == pytest.approx(3 * ML, rel=1e-14)


def test_next_change_returns_every_boundary() -> None:
    p = NeedleProtocol(
        needle(
            start="5 s",
            aliquots={"volume": "1 mL", "count": 3, "rate": "2 mL/min", "pause": "20 s"},
        )
    )
    expected = [5.0, 35.0, 55.0, 85.0, 105.0, 135.0]
    assert boundaries(p) == pytest.approx(expected, rel=1e-14)
    # from inside a segment, and from just before a boundary
    assert p.next_change(40.0) == pytest.approx(55.0, rel=1e-14)
    assert p.next_change(54.999) == pytest.approx(55.0, rel=1e-14)
    assert p.next_change(135.0) is None


def test_schedule_finishes_at_the_end_of_its_last_segment() -> None:
    p = NeedleProtocol(
        needle(aliquots={"volume": "1 mL", "count": 2, "rate": "2 mL/min", "pause": "20 s"})
    )
    t = 0.0
    for end in boundaries(p):
        p.account(end, p.scheduled_rate(t), end - t)
        t = end
    assert p.finished_at == pytest.approx(80.0, rel=1e-14)
    assert p.injected == pytest.approx(2 * ML, rel=1e-14)


# --- several needles -----------------------------------------------------------------------


def test_after_starts_the_second_needle_when_the_first_finishes() -> None:
    injector = Injector(
        [
            needle("left", rate="3 mL/min", volume="2 mL"),  # 40 s
            needle("right", rate="2 mL/min", volume="1 mL", after="left"),  # 30 s
        ]
    )
    left, right = injector.protocols
    assert injector.by_name("right") is right
    assert right.started_at is None
    assert not right.active(0.0)
    assert injector.next_change(0.0) == pytest.approx(40.0, rel=1e-14)
    assert injector.planned_end() == pytest.approx(70.0, rel=1e-14)

    # the time loop: step to each change, account, release
    t = 0.0
    while not injector.finished():
        change = injector.next_change(t)
        assert change is not None
        for p in injector.protocols:
            p.account(change, p.scheduled_rate(t), change - t)
        t = change
        injector.release(t)
        if left.finished_at is None:
            assert right.started_at is None
    assert left.finished_at == pytest.approx(40.0, rel=1e-14)
    assert right.started_at == left.finished_at
    assert right.finished_at == pytest.approx(70.0, rel=1e-14)
    assert t == pytest.approx(70.0, rel=1e-14)
    assert left.injected == pytest.approx(2 * ML, rel=1e-14)
    assert right.injected == pytest.approx(1 * ML, rel=1e-14)


def test_release_waits_for_the_first_needle() -> None:
    injector = Injector(
        [
            needle("left", rate="3 mL/min", volume="2 mL"),
            needle("right", rate="2 mL/min", volume="1 mL", after="left"),
        ]
    )
    injector.release(100.0)  # nothing finished yet: nothing released
    assert injector.by_name("right").started_at is None
    left = injector.by_name("left")
    left.account(25.0, left.scheduled_rate(0.0), 25.0)
    injector.release(25.0)
    assert injector.by_name("right").started_at is None


def test_planned_end_of_parallel_and_chained_needles() -> None:
    parallel = Injector(
        [
            needle("a", rate="3 mL/min", volume="2 mL"),  # 0-40 s
            needle("b", rate="1 mL/min", volume="1 mL", start="10 s"),  # 10-70 s
        ]
    )
    assert parallel.planned_end() == pytest.approx(70.0, rel=1e-14)
    # listed out of order: c after b after a
    chained = Injector(
        [
            needle("c", rate="3 mL/min", volume="1 mL", after="b"),  # 20 s
            needle("b", rate="1 mL/min", volume="1 mL", after="a"),  # 60 s
            needle("a", rate="3 mL/min", volume="2 mL", start="5 s"),  # 40 s
        ]
    )
    assert chained.planned_end() == pytest.approx(125.0, rel=1e-14)


@pytest.mark.parametrize("after", [None, "pump"])
def test_planned_end_is_unknown_with_a_pressure_controlled_needle(after: str | None) -> None:
    injector = Injector(
        [
            needle("pump", rate="3 mL/min", volume="2 mL"),
            needle("hand", syringe_pressure="1 MPa", volume="1 mL", after=after),
        ]
    )
    assert injector.planned_end() is None


def test_injector_finished_only_when_every_needle_is() -> None:
    injector = Injector([needle("a", rate="3 mL/min", volume="1 mL"), needle("b", **HAND)])
    a, b = injector.protocols
    a.account(20.0, a.scheduled_rate(0.0), 20.0)
    assert a.finished_at == pytest.approx(20.0) and not injector.finished()
    b.account(20.0, 5e-8, 20.0)
    assert injector.finished()


# --- pressure control ----------------------------------------------------------------------


def test_pressure_controlled_needle_has_no_schedule() -> None:
    p = NeedleProtocol(needle(**HAND))
    assert p.pressure_controlled
    assert p.segments == []
    assert p.target_volume == 1e-6
    assert p.active(0.0)
    assert p.scheduled_rate(0.0) == 0.0  # the problem solves its rate
    assert p.next_change(0.0) is None


def test_account_finishes_a_pressure_controlled_needle_when_its_volume_is_in() -> None:
    p = NeedleProtocol(needle(**HAND))
    rates = [2e-8, 5e-8, 3e-8, 1e-8]  # m^3/s over steps of 10 s: 0.2, 0.5, 0.3 mL
    t = 0.0
    for k, rate in enumerate(rates[:3]):
        t += 10.0
        p.account(t, rate, 10.0)
        assert (p.finished_at is not None) == (k == 2), k
    assert p.finished_at == 30.0
    assert p.injected == pytest.approx(1e-6, rel=1e-14)
    # nothing changes the finishing time afterwards
    p.account(40.0, rates[3], 10.0)
    assert p.finished_at == 30.0


def test_account_does_not_finish_a_pressure_controlled_needle_early() -> None:
    p = NeedleProtocol(needle(**HAND))
    p.account(100.0, 0.999e-8, 100.0)  # 0.999 mL of 1 mL
    assert p.finished_at is None
    p.account(101.0, 1e-9, 1.0)  # the last 0.001 mL
    assert p.finished_at == 101.0


def test_segment_is_a_plain_record() -> None:
    assert Segment(0.0, 1.0, 2.0) == Segment(begin=0.0, end=1.0, rate=2.0)
