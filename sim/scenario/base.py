"""Common base of all scenario sections: strict, immutable, typed data."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A scenario section: unknown keys are errors, values are immutable after validation,
    and a float that is NaN or infinite is an error ("not a finite number")."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False
    )
