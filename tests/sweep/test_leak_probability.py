"""Leak probability over bone realisations, on tables with known answers: Wilson intervals
against published values and scipy, Katz relative risks against a hand computation and scipy,
the zero-cell correction, the first-leak curve, the volume at risk, groups and references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest
from scipy.stats.contingency import relative_risk

from sim.sweep.leak_probability import (
    ANY,
    FIRST_LEAK,
    INJECTED,
    Z95,
    first_leak_volumes,
    katz_relative_risk,
    leak_curve,
    leak_probability,
    versus,
    volume_at_risk,
    wilson_interval,
)

ML = 1e-6
INF = math.inf


@pytest.mark.parametrize(
    ("leaks", "n", "published"),
    [
        # Newcombe 1998, Stat Med 17:857, Table II (Wilson score method, no continuity correction)
        (81, 263, (0.2553, 0.3662)),
        (15, 148, (0.0624, 0.1605)),
        (0, 20, (0.0000, 0.1611)),
        (1, 29, (0.0061, 0.1718)),
        (0, 10, None),
        (5, 10, None),
        (10, 10, None),
    ],
)
def test_wilson_interval_matches_published_values_and_scipy(
    leaks: int, n: int, published: tuple[float, float] | None
) -> None:
    low, high = wilson_interval(leaks, n)
    scipy_ci = binomtest(leaks, n).proportion_ci(method="wilson")
    assert float(low) == pytest.approx(scipy_ci.low, abs=1e-12)
    assert float(high) == pytest.approx(scipy_ci.high, abs=1e-12)
    if published is not None:
        assert (round(float(low), 4), round(float(high), 4)) == published


def test_wilson_interval_edges_and_arrays() -> None:
    """0 of n: [0, z² / (n + z²)]; n of n: [n / (n + z²), 1]; n = 0: undefined (NaN)."""
    low, high = wilson_interval([0, 10, 0], [10, 10, 0])
    z2 = Z95**2
    assert low[0] == 0.0 and high[0] == pytest.approx(z2 / (10 + z2))
    assert low[1] == pytest.approx(10 / (10 + z2)) and high[1] == 1.0
    assert np.isnan(low[2]) and np.isnan(high[2])


def test_katz_relative_risk_by_hand_and_against_scipy() -> None:
    """15 of 100 against 5 of 100: RR = 3, SE(ln RR) = sqrt(1/15 - 1/100 + 1/5 - 1/100)."""
    rr = katz_relative_risk(15, 100, 5, 100)
    se = math.sqrt(1 / 15 - 1 / 100 + 1 / 5 - 1 / 100)
    assert se == pytest.approx(0.496655, abs=1e-6)
    assert rr.rr == pytest.approx(3.0)
    assert (rr.low, rr.high) == pytest.approx(
        (3 * math.exp(-1.959964 * se), 3 * math.exp(1.959964 * se))
    )
    assert (round(rr.low, 3), round(rr.high, 3)) == (1.133, 7.941)
    assert not rr.corrected
    for a, n1, c, n2 in [(15, 100, 5, 100), (20, 40, 4, 40), (3, 17, 9, 25)]:
        ours = katz_relative_risk(a, n1, c, n2)
        theirs = relative_risk(a, n1, c, n2)
        ci = theirs.confidence_interval(0.95)
        assert ours.rr == pytest.approx(theirs.relative_risk)
        assert (ours.low, ours.high) == pytest.approx((ci.low, ci.high))


def test_katz_relative_risk_adds_one_half_to_every_cell_when_one_is_zero() -> None:
    """0 of 20 against 5 of 20: the table (0, 20; 5, 15) becomes (0.5, 20.5; 5.5, 15.5)."""
    rr = katz_relative_risk(0, 20, 5, 20)
    assert rr.corrected
    expected = (0.5 / 21) / (5.5 / 21)
    se = math.sqrt(1 / 0.5 - 1 / 21 + 1 / 5.5 - 1 / 21)
    assert rr.rr == pytest.approx(expected)
    assert rr.low == pytest.approx(expected * math.exp(-Z95 * se))
    assert rr.high == pytest.approx(expected * math.exp(Z95 * se))
    # nothing but leaks in both groups: without the correction the interval would have no width
    both = katz_relative_risk(10, 10, 10, 10)
    assert both.corrected and both.rr == pytest.approx(1.0) and both.low < 1 < both.high
    # no leak in either group
    none = katz_relative_risk(0, 10, 0, 30)
    assert none.corrected and none.rr == pytest.approx((0.5 / 11) / (0.5 / 31))
    with pytest.raises(ValueError, match="runs in both groups"):
        katz_relative_risk(0, 0, 1, 10)


def test_leak_curve_is_the_empirical_distribution_up_to_the_volume_every_run_reached() -> None:
    """Seven realisations: leaks at 0.1, 0.3, 0.3, 0.8 and 0.95 mL; two without a leak, which
    stopped at 0.9 and 1 mL. Up to 0.9 mL every realisation is known: F = k / 7."""
    first = np.array([0.1, 0.3, 0.3, INF, INF, 0.8, 0.95]) * ML
    injected = np.array([1.0, 1.0, 1.0, 1.0, 0.9, 0.8, 1.0]) * ML
    curve = leak_curve(first, injected)
    assert curve.n == 7 and curve.reached == pytest.approx(0.9 * ML)
    assert curve.volume / ML == pytest.approx([0.0, 0.1, 0.3, 0.8, 0.9])
    assert curve.leaks.tolist() == [0, 1, 3, 4, 4]
    assert curve.p == pytest.approx(np.array([0, 1, 3, 4, 4]) / 7)
    low, high = curve.band
    for k, (lo, hi) in enumerate(zip(low, high, strict=True)):
        ci = binomtest(int(curve.leaks[k]), 7).proportion_ci(method="wilson")
        assert (lo, hi) == pytest.approx((ci.low, ci.high), abs=1e-12)
    # the estimate passes 40 % at 0.3 mL (3/7 = 0.43), 50 % at 0.8 mL (4/7 = 0.57), and never
    # exceeds 4/7 up to 0.9 mL (the leak at 0.95 mL counts only at the end of the run)
    assert volume_at_risk(curve, 0.4) == pytest.approx(0.3 * ML)
    assert volume_at_risk(curve, 0.5) == pytest.approx(0.8 * ML)
    assert volume_at_risk(curve, 4 / 7) is None
    # upper bound of 0 of 7 leaks is z² / (7 + z²) = 0.35: it passes 10 % before any leak
    assert volume_at_risk(curve, 0.1, upper=True) == 0.0
    assert volume_at_risk(curve, 0.4, upper=True) == pytest.approx(0.1 * ML)


def test_volume_at_risk_needs_the_estimate_to_exceed_the_level() -> None:
    """20 realisations, leaks at 0.1, 0.2, ... mL: F = 0.1 at 0.2 mL is not above 10 %; the
    third leak (0.3 mL) passes it. The upper bound passes 10 % at the first leak only when
    0 of n cannot be bounded below 10 %, i.e. n < z² (1 - 0.1) / 0.1 = 34.6."""
    first = np.where(np.arange(20) < 5, (np.arange(20) + 1) * 0.1, INF) * ML
    curve = leak_curve(first, np.full(20, 2 * ML))
    assert volume_at_risk(curve, 0.1) == pytest.approx(0.3 * ML)
    assert volume_at_risk(curve, 0.1, upper=True) == 0.0
    first = np.where(np.arange(40) < 4, (np.arange(40) + 1) * 0.1, INF) * ML
    curve = leak_curve(first, np.full(40, 5 * ML))
    assert curve.p[-1] == pytest.approx(0.1)
    assert volume_at_risk(curve, 0.1) is None
    assert volume_at_risk(curve, 0.1, upper=True) == pytest.approx(0.1 * ML)


def test_leak_curve_when_every_realisation_leaked_or_none_finished() -> None:
    curve = leak_curve(np.array([0.2, 0.5]) * ML, np.array([0.5, 0.7]) * ML)
    assert curve.reached == pytest.approx(0.7 * ML)
    assert curve.leaks.tolist() == [0, 1, 2, 2]
    empty = leak_curve(np.zeros(0), np.zeros(0))
    assert empty.n == 0 and np.isnan(empty.p).all()


def table() -> dict[str, np.ndarray]:
    """Two parameters (a: 1 or 2, b: 'x' or 'y'), four realisations each (seed), two routes:
    vein leaks at 0.1 mL in realisations 0 and 1 of both groups with b = 'y', disc at 0.2 mL
    in realisation 2 of (2, 'y') and at 0.05 mL in realisation 0 of (1, 'x'); realisation 3
    of (2, 'x') failed."""
    a, b, seed, status, vein, disc = [], [], [], [], [], []
    for av in (1.0, 2.0):
        for bv in ("x", "y"):
            for k in range(4):
                a.append(av)
                b.append(bv)
                seed.append(float(100 + k))
                failed = (av, bv, k) == (2.0, "x", 3)
                status.append("failed" if failed else "done")
                vein.append(0.1e-6 if bv == "y" and k < 2 else None)
                disc.append({(2.0, "y", 2): 0.2e-6, (1.0, "x", 0): 0.05e-6}.get((av, bv, k)))
    return {
        "status": np.array(status, dtype=object),
        "a": np.array(a),
        "b": np.array(b, dtype=object),
        "bone.heterogeneity.seed": np.array(seed),
        FIRST_LEAK + "vein": np.array([np.nan if v is None else v for v in vein]),
        FIRST_LEAK + "disc": np.array(disc, dtype=object),  # nulls come as objects
        INJECTED: np.where(np.array(status) == "done", 1e-6, np.nan),
    }


def test_first_leak_volumes_per_route_and_through_any_route() -> None:
    columns = table()
    vein = first_leak_volumes(columns, "vein")
    anywhere = first_leak_volumes(columns, ANY)
    assert np.isnan(vein[11]) and np.isnan(anywhere[11])  # the failed run
    assert vein[0] == INF and anywhere[0] == pytest.approx(0.05e-6)
    assert anywhere[14] == pytest.approx(0.2e-6) and vein[14] == INF
    assert anywhere[4] == pytest.approx(0.1e-6) == vein[4]
    assert anywhere[3] == INF


def test_groups_pool_the_seeds_and_count_leaks_per_route() -> None:
    result = leak_probability(table(), ["a", "b"], risk_level=0.3)
    assert [g.group.values for g in result.groups] == [
        {"a": 1.0, "b": "x"},
        {"a": 1.0, "b": "y"},
        {"a": 2.0, "b": "x"},
        {"a": 2.0, "b": "y"},
    ]
    counts = {
        (g.group.values["a"], g.group.values["b"]): {r: (e.leaks, e.n) for r, e in g.routes.items()}
        for g in result.groups
    }
    assert counts[(1.0, "x")] == {ANY: (1, 4), "vein": (0, 4), "disc": (1, 4)}
    assert counts[(1.0, "y")] == {ANY: (2, 4), "vein": (2, 4), "disc": (0, 4)}
    assert counts[(2.0, "x")] == {ANY: (0, 3), "vein": (0, 3), "disc": (0, 3)}
    assert counts[(2.0, "y")] == {ANY: (3, 4), "vein": (2, 4), "disc": (1, 4)}
    assert [g.unfinished for g in result.groups] == [0, 0, 1, 0]
    any_route = result.groups[3].routes[ANY]
    assert any_route.p == pytest.approx(0.75)
    ci = binomtest(3, 4).proportion_ci(method="wilson")
    assert (any_route.low, any_route.high) == pytest.approx((ci.low, ci.high))
    # F(V) through any route in (2, y): 2/4 at 0.1 mL, 3/4 at 0.2 mL; 30 % passed at 0.1 mL
    assert any_route.volume_at_risk == pytest.approx(0.1e-6)
    assert any_route.curve.leaks.tolist() == [0, 2, 3, 3]
    # pooled over b: one group per value of a
    pooled = leak_probability(table(), ["a"])
    assert [(g.routes[ANY].leaks, g.routes[ANY].n) for g in pooled.groups] == [(3, 8), (3, 7)]


def test_relative_risks_against_a_partial_reference_keep_the_other_values() -> None:
    """reference {b: 'x'}: (1, y) is compared with (1, x) and (2, y) with (2, x)."""
    result = leak_probability(table(), ["a", "b"], reference={"b": "x"})
    by = {(g.group.values["a"], g.group.values["b"]): g for g in result.groups}
    assert by[(1.0, "x")].is_reference and by[(2.0, "x")].is_reference
    assert by[(1.0, "x")].routes[ANY].relative_risk is None
    assert by[(1.0, "y")].reference is by[(1.0, "x")].group
    rr = by[(1.0, "y")].routes[ANY].relative_risk
    expected = katz_relative_risk(2, 4, 1, 4)
    assert rr == expected and rr.rr == pytest.approx(2.0)
    # (2, y) against (2, x): 3 of 4 against 0 of 3, a zero cell: Haldane-Anscombe
    rr = by[(2.0, "y")].routes[ANY].relative_risk
    assert rr.corrected and rr.rr == pytest.approx((3.5 / 5) / (0.5 / 4))
    # default reference: the first group; numbers match to a relative 1e-9
    default = leak_probability(table(), ["a", "b"])
    assert default.reference == {"a": 1.0, "b": "x"}
    assert [g.is_reference for g in default.groups] == [True, False, False, False]
    numeric = leak_probability(table(), ["a", "b"], reference={"a": 2 * (1 + 1e-12), "b": "y"})
    assert [g.is_reference for g in numeric.groups] == [False, False, False, True]
    # no group with the reference values: no relative risk
    missing = leak_probability(table(), ["a"], reference={"a": 3.0})
    assert all(r.relative_risk is None for g in missing.groups for r in g.routes.values())


def test_leak_probability_against_a_group_parameter() -> None:
    """P(leak) against a, one series per value of b."""
    result = leak_probability(table(), ["b", "a"])
    series = versus(result, "a")
    assert [s.others for s in series] == [{"b": "x"}, {"b": "y"}]
    assert series[0].x.tolist() == [1.0, 2.0]
    assert series[0].leaks.tolist() == [1, 0] and series[0].n.tolist() == [4, 3]
    assert series[1].leaks.tolist() == [2, 3]
    low, high = wilson_interval(series[1].leaks, series[1].n)
    assert series[1].low == pytest.approx(low) and series[1].high == pytest.approx(high)
    vein = versus(result, "a", "vein")
    assert vein[1].leaks.tolist() == [2, 2]


def test_a_route_called_any_is_refused() -> None:
    columns = table()
    columns[FIRST_LEAK + ANY] = columns.pop(FIRST_LEAK + "vein")
    with pytest.raises(ValueError, match="rename it"):
        leak_probability(columns, ["a"])


def test_leaks_by_a_given_volume_and_their_relative_risk() -> None:
    """By 0.1 mL: (1, y) had 2 of 4 vein leaks and (1, x) 0 of 4 (Haldane-Anscombe); by 0.2 mL
    through any route (2, y) had 3 of 4 against (2, x)'s 0 of 3; beyond the 1 mL every run
    reached there is no estimate."""
    result = leak_probability(
        table(), ["a", "b"], reference={"b": "x"}, volumes=[0.1e-6, 0.2e-6, 2e-6]
    )
    assert result.volumes == [0.1e-6, 0.2e-6, 2e-6]
    by = {(g.group.values["a"], g.group.values["b"]): g for g in result.groups}
    vein = by[(1.0, "y")].routes["vein"].by_volume
    assert (vein[0].leaks, vein[0].n, vein[0].p) == (2, 4, 0.5)
    ci = binomtest(2, 4).proportion_ci(method="wilson")
    assert (vein[0].low, vein[0].high) == pytest.approx((ci.low, ci.high))
    assert vein[0].relative_risk == katz_relative_risk(2, 4, 0, 4)
    assert vein[2] is None
    anywhere = by[(2.0, "y")].routes[ANY].by_volume
    assert (anywhere[0].leaks, anywhere[1].leaks) == (2, 3)
    assert anywhere[1].relative_risk == katz_relative_risk(3, 4, 0, 3)
    assert by[(1.0, "x")].routes[ANY].by_volume[0].relative_risk is None  # the reference
