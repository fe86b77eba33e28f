"""Recipe block ``trending``: alert and action limits on the reject rate of each class.

A rate is the share of items rejected for that reason, rolling over the last ``window`` items
(live, once the window is full) and over the whole batch (at its end). Crossing a limit raises an
alarm (``REJECT_RATE_ALERT`` / ``REJECT_RATE_ACTION``) and is shown in the batch report; how the
station watches: :mod:`inspector.pipeline.trending`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ClassLimits(BaseModel):
    """Alert and action limits of one class's reject rate (shares of items, 0..1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alert: float = Field(gt=0, le=1, description="investigate: the rate is unusual")
    action: float = Field(gt=0, le=1, description="act: stop and find the cause")

    @model_validator(mode="after")
    def _ordered(self) -> ClassLimits:
        if not self.alert < self.action:
            raise ValueError(f"the alert limit ({self.alert}) must be below the action limit ({self.action})")
        return self


class TrendLimits(BaseModel):
    """Recipe block ``trending``: the rolling window and the limits per class (defect codes or not_inspected)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: int = Field(ge=20, le=100_000, description="items in the rolling rate")
    limits: dict[str, ClassLimits] = Field(min_length=1, description="class -> limits")
    reference: str = Field(default="", description="where the limits come from (free text)")
