"""Procedural renderer of vials, tablets and blister cards with exact ground truth.

The renderer is a product feature: it drives the demo line, the test suites, the
training data and the qualification suites. ``render(product, label, seed)`` is
deterministic: the same arguments give the same bytes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from inspector.synth.base import MAX_SEED, Rendered, derive_seed, presenting
from inspector.synth.foreign import ForeignTablet
from inspector.taxonomy import Product, labels

__all__ = ["MAX_SEED", "Rendered", "derive_seed", "render"]

MAX_NUISANCE = 3.0


def _renderer(product: Product) -> Callable[..., Rendered]:
    module = importlib.import_module(f"inspector.synth.{product.value}")
    fn: Callable[..., Rendered] = module.render
    return fn


def render(
    product: Product | str,
    label: str,
    seed: int,
    nuisance: float = 1.0,
    presentation: int | None = None,
    foreign: ForeignTablet | None = None,
    look: str | None = None,
) -> Rendered:
    """Render one item of ``product`` with ground-truth ``label`` (``ok`` or a defect code).

    ``presentation`` (0, 1, ...): the same item presented again, with its own pose jitter,
    lighting, blur and noise (see :func:`inspector.synth.base.presenting`); ``None`` as always.
    ``foreign``: a random foreign tablet (tablet and blister, their foreign label; evaluation only).
    ``look``: another line's presentation of the product (:mod:`inspector.synth.looks`); ``None`` or
    ``nominal``: the renderer's own.
    """
    try:
        prod = Product(product)
    except ValueError:
        known = ", ".join(p.value for p in Product)
        raise ValueError(f"unknown product {product!r}; known: {known}") from None
    if label not in labels(prod):
        raise ValueError(f"unknown {prod.value} label {label!r}; known: {', '.join(labels(prod))}")
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed must be in 0..{MAX_SEED}, got {seed}")
    if not 0.0 <= float(nuisance) <= MAX_NUISANCE:
        raise ValueError(f"nuisance must be in 0..{MAX_NUISANCE}, got {nuisance}")
    from inspector.synth import looks  # the product renderers load only when one is used

    chosen = looks.get(prod, look)
    extra: dict[str, object] = {} if foreign is None else {"foreign": foreign}
    if chosen is not None:
        extra["look"] = chosen.scene
    if presentation is None:
        return _renderer(prod)(label, int(seed), float(nuisance), **extra)
    with presenting(int(seed), presentation):
        return _renderer(prod)(label, int(seed), float(nuisance), **extra)
