"""Geometric selectors in scenarios: how boundaries and regions of imported meshes are named.

    boundaries:
      upper_endplate: {kind: plane, point: "[0, 0, 195] mm", normal: [0, 0, 1], tolerance: 2 mm,
                       max_angle: 30}
      basivertebral: {kind: nearest_patch, landmark: "[-20, 0, 185] mm", radius: 3 mm}
    regions:
      anterior: {kind: plane_side, point: "[-5, 0, 0] mm", normal: [1, 0, 0]}

Points and lengths are in the frame and units of the mesh once scaled to metres. Later
selectors only take what earlier ones left; a selector that selects nothing is an error
(sim.geometry.selectors).
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import numpy as np
from pydantic import Field

from sim.scenario.base import Section
from sim.shapes.surface import Surface, landmark_candidates
from sim.units import Length, Point

if TYPE_CHECKING:
    from sim.geometry.selectors import Selector

Angle = Annotated[float, Field(gt=0, le=180)]
Vector = tuple[float, float, float]


class _Spec(Section):
    within: SelectorSpec | None = None

    def build(self) -> Selector:
        """The selector of sim.geometry.selectors (imported here: it needs DOLFINx)."""
        from sim.geometry import selectors

        within = self.within.build() if self.within is not None else None
        return self._build(selectors, within)

    def _build(self, geo: ModuleType, within: Any) -> Selector:
        raise NotImplementedError

    def check_on(self, surface: Surface) -> None:
        """ValueError (starting with the field at fault) unless the selector is well defined
        on the input surface (m); by default nothing to check."""


class PlaneSpec(_Spec):
    """Boundary facets within `tolerance` of a plane (optionally facing within max_angle°)."""

    kind: Literal["plane"]
    point: Point
    normal: Vector
    tolerance: Annotated[Length, Field(gt=0)]
    max_angle: Angle | None = None

    def _build(self, geo: ModuleType, within: Any) -> Selector:
        return geo.Plane(
            point=self.point,
            normal=self.normal,
            tol=self.tolerance,
            max_angle_deg=self.max_angle,
            within=within,
        )


class NormalSpec(_Spec):
    """Boundary facets whose outward normal is within max_angle° of `direction`."""

    kind: Literal["normal"]
    direction: Vector
    max_angle: Angle

    def _build(self, geo: ModuleType, within: Any) -> Selector:
        return geo.Normal(direction=self.direction, max_angle_deg=self.max_angle, within=within)


class NearestPatchSpec(_Spec):
    """The connected patch of boundary within `radius` of the boundary point nearest to
    `landmark`. The landmark must lie within `max_distance` of the surface, and no other
    part of the surface may come within `margin` of its nearest distance (then which patch
    is nearest would depend on the remeshing): both checked on the input surface."""

    kind: Literal["nearest_patch"]
    landmark: Point
    radius: Annotated[Length, Field(gt=0)]
    max_distance: Annotated[Length, Field(gt=0)] = 10e-3
    margin: Annotated[Length, Field(gt=0)] = 1e-3

    def check_on(self, surface: Surface) -> None:
        landmark = np.asarray(self.landmark, dtype=float)
        found = landmark_candidates(surface, landmark, self.margin)
        nearest = found[0]
        if nearest.distance > self.max_distance:
            raise ValueError(
                f"landmark: {_mm(landmark)} is {nearest.distance * 1e3:.3g} mm from the surface "
                f"(nearest point {_mm(nearest.point)}), farther than max_distance "
                f"{self.max_distance * 1e3:.3g} mm: put it on or just outside the patch meant"
            )
        if len(found) > 1:
            parts = "; ".join(f"{_mm(c.point)} at {c.distance * 1e3:.3g} mm" for c in found[:3])
            raise ValueError(
                f"landmark: {_mm(landmark)} is ambiguous: {len(found)} separate parts of the "
                f"surface come within margin {self.margin * 1e3:.3g} mm of its nearest distance "
                f"({parts}); move it closer to the patch meant"
            )

    def _build(self, geo: ModuleType, within: Any) -> Selector:
        return geo.NearestPatch(landmark=self.landmark, radius=self.radius, within=within)


def _mm(point: np.ndarray) -> str:
    return "[" + ", ".join(f"{1e3 * x:.1f}" for x in point) + "] mm"


class SphereSpec(_Spec):
    kind: Literal["sphere"]
    centre: Point
    radius: Annotated[Length, Field(gt=0)]

    def _build(self, geo: ModuleType, within: Any) -> Selector:
        return geo.Sphere(centre=self.centre, radius=self.radius, within=within)


class BoxSpec(_Spec):
    kind: Literal["box"]
    min: Point
    max: Point

    def _build(self, geo: ModuleType, within: Any) -> Selector:
        return geo.Box(min=self.min, max=self.max, within=within)


class EllipsoidSpec(_Spec):
    kind: Literal["ellipsoid"]
    centre: Point
    radii: tuple[Length, Length, Length]

    def _build(self, geo: ModuleType, within: Any) -> Selector:
        return geo.Ellipsoid(centre=self.centre, radii=self.radii, within=within)


class PlaneSideSpec(_Spec):
    """Cells (or facets) on the side of a plane its normal points to."""

    kind: Literal["plane_side"]
    point: Point
    normal: Vector

    def _build(self, geo: ModuleType, within: Any) -> Selector:
        return geo.PlaneSide(point=self.point, normal=self.normal, within=within)


SelectorSpec = Annotated[
    Union[  # noqa: UP007  (a forward-referenced union)
        PlaneSpec,
        NormalSpec,
        NearestPatchSpec,
        SphereSpec,
        BoxSpec,
        EllipsoidSpec,
        PlaneSideSpec,
    ],
    Field(discriminator="kind"),
]
for _model in (
    PlaneSpec,
    NormalSpec,
    NearestPatchSpec,
    SphereSpec,
    BoxSpec,
    EllipsoidSpec,
    PlaneSideSpec,
):
    _model.model_rebuild()
