"""Common base of all scenario sections: strict, immutable, typed data."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from sim.scenario.geometry import GeometryKind


class Section(BaseModel):
    """A scenario section: unknown keys are errors, values are immutable after validation,
    and a float that is NaN or infinite is an error ("not a finite number")."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False
    )

    def check_geometry(self, geometry: GeometryKind, where: str) -> None:
        """Checks of this section that need the scenario's geometry: raise ValueError with a
        message starting with the field's path (`where` is this section's); none by default."""
