"""Station files for tests: the demo station with a test's own recipe, camera, PLC and records."""

from __future__ import annotations

from pathlib import Path

from inspector.config.station import DEMO_STATION, StationConfig, apply_flags


def station_config(
    recipe: str,
    *,
    camera: str = "sim",
    items: int | None = None,
    line_rate: float | None = None,
    seed: int = 0,
    defect_rate: float = 0.05,
    nuisance: float = 1.0,
    images: str | None = None,
    db: str | Path | None = None,
    plc: str = "none",
    threads: int | None = None,
) -> StationConfig:
    """The demo station with these fields; no PLC unless ``plc`` names one, no records unless ``db``."""
    config = apply_flags(
        DEMO_STATION,
        recipe=recipe,
        camera=camera,
        items=items,
        line_rate=line_rate,
        seed=seed,
        defect_rate=defect_rate,
        nuisance=nuisance,
        images=images,
        plc=plc,
        db=None if db is None else str(db),
        threads=threads,
    )
    if db is not None:
        return config
    return StationConfig.model_validate({**config.model_dump(mode="json"), "records": None})
