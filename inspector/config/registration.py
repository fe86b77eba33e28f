"""Registration settings of a recipe: where the nominal item lies, and the pose range the model is validated for."""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class ItemReference(BaseModel):
    """The nominal item as registration measures it (``inspector registration-reference``).

    ``x, y``: the anchor point in pixels (blister: the card's centre; tablet: the tablet's centre;
    vial: the axis at the vial's base); ``angle_deg``: its orientation; ``width, height``: the
    located outline's size, from which the match score is taken.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    x: float
    y: float
    angle_deg: float = Field(default=0.0, ge=-90.0, le=90.0)
    width: float = Field(gt=0)
    height: float = Field(gt=0)


class RegistrationSpec(BaseModel):
    """Locate the item before inspecting it, and guard the pose the model was validated for.

    An item whose registration fails, whose score is below ``min_score`` or whose shift or turn
    from the reference is larger than the limits is rejected ``not_inspected`` (``pose``), never
    accepted; ``alarm_after`` such items in a row raise ``POSE_GUARD`` (the feeder or the camera
    mount moved).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    reference: ItemReference
    max_shift_px: float = Field(gt=0, le=200, description="largest distance of the anchor from the reference")
    max_turn_deg: float = Field(gt=0, le=45, description="largest turn from the reference orientation")
    min_score: float = Field(default=0.8, ge=0.0, le=1.0, description="lowest match score of the located outline")
    align_rotation: bool = Field(
        default=True, description="warp the item upright (False: only shift it; a round tablet has no orientation)"
    )
    rotate_above_deg: float = Field(
        default=1.0,
        ge=0.0,
        le=45,
        description="turn the units upright only above this turn; below it they are cut by whole pixels"
        " (no interpolation), the turn left in as the models were trained on it",
    )
    alarm_after: int = Field(default=5, ge=1, le=10_000, description="pose refusals in a row that raise POSE_GUARD")
    measured: str = Field(default="", description="how the reference was measured (command and images)")


def pose_matrix(reference: ItemReference, dx: float, dy: float, turn_deg: float) -> np.ndarray:
    """2x3 affine map from reference coordinates to frame coordinates.

    For an item found ``dx, dy`` pixels from the reference anchor and turned ``turn_deg`` degrees
    (positive: clockwise on screen, image y pointing down). The station cuts its units with it,
    and the HMI draws the pockets and the anchor where the item lay.
    """
    t = math.radians(turn_deg)
    c, s = math.cos(t), math.sin(t)
    rot = np.array([[c, -s], [s, c]])
    anchor = np.array([reference.x, reference.y])
    offset = anchor + np.array([dx, dy]) - rot @ anchor
    return np.hstack([rot, offset[:, None]])
