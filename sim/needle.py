"""The injection needle (cannula): gauge table and inner radius.

Inner diameters of thin-wall bone-biopsy / vertebroplasty cannulas (DESIGN.md §2):
8 G 3.43 mm, 10 G 2.69 mm, 11 G 2.39 mm, 13 G 1.80 mm, 15 G 1.37 mm.
"""

from __future__ import annotations

#: gauge -> inner diameter (m)
GAUGE_INNER_DIAMETER: dict[int, float] = {
    8: 3.43e-3,
    10: 2.69e-3,
    11: 2.39e-3,
    13: 1.80e-3,
    15: 1.37e-3,
}


def inner_diameter_of_gauge(gauge: int) -> float:
    """Inner diameter (m) of a cannula of the given gauge; ValueError for an unknown gauge."""
    try:
        return GAUGE_INNER_DIAMETER[gauge]
    except KeyError:
        known = ", ".join(f"{g} G" for g in sorted(GAUGE_INNER_DIAMETER))
        raise ValueError(f"gauge {gauge} is not in the table; known gauges: {known}") from None
