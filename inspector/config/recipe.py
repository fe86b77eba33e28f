"""Product recipes: what the station inspects and how (YAML, validated, versioned)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from inspector.config.errors import ConfigError
from inspector.config.identity import IdentitySpec
from inspector.config.loader import load_yaml_model
from inspector.config.monitor import InputLimits
from inspector.config.registration import RegistrationSpec
from inspector.config.roi import PocketGrid
from inspector.config.trending import TrendLimits
from inspector.taxonomy import Criticality, Product, defect

RECIPES_DIR = "recipes"


class FrameSpec(BaseModel):
    """The frame the station expects; any other size is a corrupt frame, never inspected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: int = Field(gt=0, le=16384)
    height: int = Field(gt=0, le=16384)
    channels: Literal[1, 3]

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.height, self.width) if self.channels == 1 else (self.height, self.width, self.channels)


class ModelRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="model package folder, relative to the project root")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="expected sha256 of model.onnx")


class RecipeThresholds(BaseModel):
    """Thresholds instead of the model record's. Finite and in range, or the recipe is refused: a NaN
    anomaly threshold compares false with every score and would switch the anomaly check off.

    Whether they are looser than the package's validated ones is judged when the station opens
    (:func:`looser_thresholds`): refused in production, marked in every record in demo mode.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    confidence: float = Field(ge=0.0, le=1.0, description="top-class probability below which an item is undecided")
    anomaly: float = Field(ge=0.0, description="anomaly score above which an item is rejected (scores are >= 0)")


class StartupChallenge(BaseModel):
    """The challenge set a production batch starts with: every item must be judged right first.

    ``seed``: rendered, one item of each class in ``classes`` (default: every critical class of the
    product) plus ``good_items`` good ones; ``folder``: a manifest folder of photographed challenge
    items (the files camera stands in for the operator presenting them), pinned by the sha256 of
    its manifest, which pins every image in turn.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    folder: str | None = None
    manifest_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    classes: list[str] | None = None
    good_items: int = Field(default=2, ge=1, le=100)

    @model_validator(mode="after")
    def _one_source(self) -> StartupChallenge:
        if (self.seed is None) == (self.folder is None):
            raise ValueError("startup_challenge: give either seed (rendered) or folder (photographed items)")
        if (self.folder is None) != (self.manifest_sha256 is None):
            raise ValueError("startup_challenge: a folder comes with the manifest_sha256 that pins it, a seed without")
        return self


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1]
    recipe_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    product: Product
    description: str = ""
    camera: str = Field(description="camera config file in camera_configs/")
    frame: FrameSpec
    model: ModelRef
    thresholds: RecipeThresholds | None = Field(default=None, description="None: the model record's thresholds")
    accept_minor: list[str] = Field(default_factory=list, description="minor defect codes accepted by this recipe")
    pocket_grid: PocketGrid | None = None
    registration: RegistrationSpec | None = Field(
        default=None, description="None: the units are cut at fixed places and the pose is not guarded"
    )
    identity: IdentitySpec | None = Field(
        default=None,
        description="the product's tablet (colour, size, shape): a deterministic check beside the model (tablet,"
        " blister); None: the model alone judges identity",
    )
    latency_budget_ms: float = Field(gt=0, le=10_000)
    line_rate_per_min: float = Field(gt=0, le=100_000)
    queue_depth: int = Field(default=8, ge=1, le=1024)
    input_monitor: InputLimits | None = Field(default=None, description="None: input drift is not monitored")
    trending: TrendLimits | None = Field(default=None, description="None: reject rates are not trended")
    startup_challenge: StartupChallenge | None = Field(
        default=None, description="None: no start-up challenge (production refuses such a recipe)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        for code in self.accept_minor:
            try:
                d = defect(self.product, code)
            except KeyError as exc:
                raise ValueError(str(exc).strip("'\"")) from None
            if d.criticality is not Criticality.MINOR:
                raise ValueError(f"accept_minor: {code!r} is {d.criticality.value}; only minor defects may be accepted")
        if (self.product is Product.BLISTER) != (self.pocket_grid is not None):
            raise ValueError("pocket_grid is required for blisters and only for blisters")
        if self.identity is not None and self.product not in (Product.TABLET, Product.BLISTER):
            raise ValueError(f"identity: the identity check is for tablets and blister cards, not {self.product.value}")
        if self.identity is not None and self.frame.channels != 3:
            raise ValueError("identity: the identity check measures colour; the frame must have 3 channels")
        if self.pocket_grid is not None and self.pocket_grid.image_size != (self.frame.width, self.frame.height):
            raise ValueError("pocket_grid.image_size must equal the frame size")
        period_ms = 60_000.0 / self.line_rate_per_min
        if self.latency_budget_ms > 20 * period_ms:
            raise ValueError(
                f"latency_budget_ms {self.latency_budget_ms} is longer than 20 item periods ({period_ms:.1f} ms each)"
            )
        if self.trending is not None:
            for code in self.trending.limits:
                if code == "not_inspected":
                    continue
                try:
                    defect(self.product, code)
                except KeyError as exc:
                    raise ValueError(f"trending.limits: {str(exc).strip(chr(39))}") from None
        if self.startup_challenge is not None and self.startup_challenge.classes is not None:
            for code in self.startup_challenge.classes:
                try:
                    defect(self.product, code)
                except KeyError as exc:
                    raise ValueError(f"startup_challenge.classes: {str(exc).strip(chr(39))}") from None
        return self

    @property
    def item_period_ms(self) -> float:
        return 60_000.0 / self.line_rate_per_min


class LoadedRecipe(BaseModel):
    """A recipe with the path and hash of the file it came from (recorded per batch)."""

    model_config = ConfigDict(frozen=True)

    recipe: Recipe
    path: Path
    sha256: str


def looser_thresholds(
    confidence: float, anomaly: float, *, validated_confidence: float, validated_anomaly: float
) -> tuple[str, ...]:
    """The thresholds that let more items pass than the model package's validated ones.

    A lower confidence threshold makes fewer items ``undecided``; a higher anomaly threshold
    rejects fewer as ``anomaly``. Either can let a defect through that validation would reject.
    """
    looser: list[str] = []
    if not confidence >= validated_confidence:  # written so that NaN counts as looser
        looser.append("confidence")
    if not anomaly <= validated_anomaly:
        looser.append("anomaly")
    return tuple(looser)


def find_project_root(start: Path | None = None) -> Path:
    """The folder holding ``recipes/`` and ``models/``: $INSPECTOR_HOME, else the cwd or a parent."""
    env = os.environ.get("INSPECTOR_HOME")
    if env:
        return Path(env)
    here = (start or Path.cwd()).resolve()
    for p in (here, *here.parents):
        if (p / RECIPES_DIR).is_dir() and (p / "models").is_dir():
            return p
    # Fall back to the source checkout this package lives in.
    return Path(__file__).resolve().parents[2]


def resolve_recipe_path(name_or_path: str, root: Path | None = None) -> Path:
    """``vial`` -> ``<root>/recipes/vial.yaml``; a path is taken as given."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    return (root or find_project_root()) / RECIPES_DIR / f"{name_or_path}.yaml"


def load_recipe(name_or_path: str, root: Path | None = None) -> LoadedRecipe:
    path = resolve_recipe_path(name_or_path, root)
    recipe = load_yaml_model(path, Recipe)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return LoadedRecipe(recipe=recipe, path=path, sha256=digest)


__all__ = ["ConfigError", "FrameSpec", "LoadedRecipe", "ModelRef", "Recipe", "load_recipe", "looser_thresholds"]
