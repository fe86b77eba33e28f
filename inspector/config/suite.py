"""Qualification suites (``qualification/<name>.yaml``): what is presented, how often, and what must pass.

A suite fixes, before anything is run (draft Annex 22: criteria before testing):

- the product and recipe it qualifies;
- its challenge sets: manifest folders of photographed or rendered items (each item, by its
  ``item_key``, presented ``presentations`` times), or a rendering spec the runner renders the
  same way every time (same seeds, same bytes);
- the manual-inspection baseline (Knapp): a CSV the validation team supplies, one row per
  item, ``item_key,p_manual``: the share of manual inspections that rejected the item (e.g.
  7 of 10 inspectors x presentations -> 0.7);
- the acceptance criteria: detection rate per class (a default and per-class minimums),
  false reject rate maximum, critical escapes maximum, and the reject-zone efficiency of the
  station relative to the manual baseline (1.0: at least as good as manual inspection).

The suite file's SHA-256 is recorded with every run; a formal run needs the suite approved
(signed) first.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from inspector.config.loader import load_yaml_model
from inspector.taxonomy import Product, labels

QUALIFICATION_DIR = "qualification"
MIN_PRESENTATIONS = 10


class RenderedSet(BaseModel):
    """A challenge set rendered on demand (deterministic: the same spec renders the same bytes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(ge=0, le=2**32 - 1)
    items: int = Field(ge=1, le=100_000)
    defect_rate: float = Field(default=0.5, ge=0.0, le=1.0)
    nuisance: float = Field(default=1.0, ge=0.0, le=3.0)


class ChallengeSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    folder: str | None = Field(default=None, description="a manifest folder (relative to the suite file)")
    render: RenderedSet | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ChallengeSet:
        if (self.folder is None) == (self.render is None):
            raise ValueError(f"challenge set {self.name}: give either folder or render, not both or neither")
        return self


class Criteria(BaseModel):
    """Acceptance criteria, fixed before the run; pass or fail is decided by these numbers alone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detection_rate_min: float = Field(ge=0.0, le=1.0, description="default per-class minimum detection rate")
    detection_rate_min_by_class: dict[str, float] = Field(default_factory=dict)
    false_reject_rate_max: float = Field(ge=0.0, le=1.0)
    critical_escapes_max: int = Field(default=0, ge=0)
    reject_zone_efficiency_min: float | None = Field(
        default=1.0, ge=0.0, description="station RZN / manual RZN over the manual reject zone; None: not judged"
    )


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1]
    suite_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    product: Product
    recipe: str = Field(min_length=1, description="recipe name (recipes/NAME.yaml) or path")
    description: str = ""
    challenge_sets: list[ChallengeSet] = Field(min_length=1)
    presentations: int = Field(ge=MIN_PRESENTATIONS, le=1000, description="presentations of each item")
    manual_baseline: str | None = Field(default=None, description="CSV item_key,p_manual (relative to the file)")
    criteria: Criteria
    line_rate_per_min: float | None = Field(default=None, gt=0, le=100_000, description="None: the recipe's")
    plc: Literal["station", "none", "line-sim"] = Field(
        default="station", description="station: the station file's PLC; none; line-sim (demo stations only)"
    )

    @model_validator(mode="after")
    def _classes(self) -> Suite:
        known = labels(self.product)
        bad = [c for c in self.criteria.detection_rate_min_by_class if c not in known[1:]]
        if bad:
            raise ValueError(f"criteria.detection_rate_min_by_class: {bad} are not {self.product.value} defects")
        if self.criteria.reject_zone_efficiency_min is not None and self.manual_baseline is None:
            raise ValueError("a reject-zone efficiency criterion needs the manual_baseline file")
        names = [s.name for s in self.challenge_sets]
        if len(set(names)) != len(names):
            raise ValueError("challenge set names must be unique")
        return self


class LoadedSuite(BaseModel):
    model_config = ConfigDict(frozen=True)

    suite: Suite
    path: Path
    sha256: str

    @property
    def object_id(self) -> str:
        return f"{self.suite.suite_id}@{self.suite.version}"

    def resolve(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.path.parent / p


def load_suite(path: str | Path) -> LoadedSuite:
    p = Path(path)
    suite = load_yaml_model(p, Suite)
    return LoadedSuite(suite=suite, path=p.resolve(), sha256=hashlib.sha256(p.read_bytes()).hexdigest())
