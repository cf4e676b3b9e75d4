"""Common base of all scenario sections: strict, immutable, typed data."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from sim.scenario.geometry import GeometryKind


class SummaryEntry(Enum):
    """What an entry of a run's summary.json holds (sim.outputs.summary_layout)."""

    NUMBER = "one number"
    TEXT = "text"
    BY_NAME = "numbers by the names of the mesh's regions"


NUMBER, TEXT, BY_NAME = SummaryEntry.NUMBER, SummaryEntry.TEXT, SummaryEntry.BY_NAME


class Section(BaseModel):
    """A scenario section: unknown keys are errors, values are immutable after validation,
    and a float that is NaN or infinite is an error ("not a finite number")."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False
    )

    def check_geometry(self, geometry: GeometryKind, where: str) -> None:
        """Checks of this section that need the scenario's geometry: raise ValueError with a
        message starting with the field's path (`where` is this section's); none by default."""

    def summary_entries(self) -> dict[str, Any]:
        """The entries the component this section switches on adds to summary.json, as a
        layout (sim.outputs.summary_layout: SummaryEntry leaves, nested dicts by name); none
        by default."""
        return {}
