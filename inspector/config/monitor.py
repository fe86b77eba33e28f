"""Recipe block ``input_monitor``: the validated input space as limits of rolling frame statistics.

What the statistics are and how the station watches them: :mod:`inspector.pipeline.monitor`.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, model_validator

STATS = ("brightness", "noise", "sharpness")


class InputLimits(BaseModel):
    """Recipe block ``input_monitor``: window length and the limits of each rolling mean."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: int = Field(ge=10, le=100_000, description="frames in the rolling mean")
    brightness: tuple[float, float] = Field(description="[low, high] of the rolling mean grey level")
    noise: tuple[float, float] = Field(description="[low, high] of the rolling mean noise, grey levels")
    sharpness: tuple[float, float] = Field(description="[low, high] of the rolling mean RMS gradient, half resolution")
    reference: str = Field(default="", description="where the limits were measured (free text)")

    @model_validator(mode="after")
    def _ordered(self) -> InputLimits:
        for name in STATS:
            lo, hi = getattr(self, name)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"input_monitor.{name}: need finite low < high, got [{lo}, {hi}]")
        return self
