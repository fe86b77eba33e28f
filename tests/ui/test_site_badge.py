"""The HMI shows, in its batch bar, how far the site database is behind the station's records (store-and-forward)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from inspector.site import schema as S
from tests.support.site import Site
from ui.controller import Phase


def test_the_batch_bar_shows_the_site_lag_and_hides_it_without_a_site(qtbot: Any, make_hmi: Any, site: Site) -> None:
    w = make_hmi("tablet", line_rate=1200, site=site.url)
    qtbot.waitUntil(lambda: w.controller.phase == Phase.RUNNING, timeout=30_000)
    qtbot.waitUntil(lambda: w.controller.tally.inspected >= 30, timeout=20_000)
    bar = w.batch
    assert bar.site.isVisible() and bar.site_caption.isVisible()
    qtbot.waitUntil(lambda: bar.site.text() == "UP TO DATE", timeout=15_000)

    def at_site() -> int:
        with site.engine.connect() as c:
            return int(c.execute(select(func.count()).select_from(S.items)).scalar_one())

    qtbot.waitUntil(lambda: at_site() >= 30, timeout=15_000)  # the rows really are at the site
    status = w.controller.client.status()
    assert status.site is not None and status.site.error is None and status.site.seconds_behind < 2.0
    w.close()
    plain = make_hmi("tablet", line_rate=1200)
    qtbot.waitUntil(lambda: plain.controller.phase == Phase.RUNNING, timeout=30_000)
    assert not plain.batch.site.isVisible()


def test_with_the_site_badge_the_window_still_fits_a_1366x768_panel(qtbot: Any, make_hmi: Any, site: Site) -> None:
    from tests.ui.test_panels import TITLE_BAR, fits, running

    w = running(make_hmi, qtbot, (1366, 768 - TITLE_BAR), site=site.url)
    qtbot.waitUntil(lambda: w.batch.site.isVisible(), timeout=10_000)
    fits(w)
    for text in ("BEHIND 99 min", "NOT REACHED", "HALTED"):  # the longest texts it shows
        w.batch.site.set(text, "#ff9800")
        fits(w)
    assert (w.width(), w.height()) == (1366, 768 - TITLE_BAR), "the window grew past the panel"
