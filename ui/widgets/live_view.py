"""The live view (newest frame, polled) and the held last-reject view, with decision overlays.

Overlays: the decision colour as a thick border and a caption band (ACCEPT / REJECT + the
reason / NOT INSPECTED + why), the recipe's pocket ROIs with their indices (each pocket
coloured by its own verdict, the deciding pocket called out), and the model's heat map with
its hot spot when the model provides one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import cv2
import numpy as np
from PyQt6.QtCore import QPointF, QRect, QRectF, Qt, QTimer
from PyQt6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPaintEvent, QPen, QPolygonF
from PyQt6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from inspector.config.registration import RegistrationSpec, pose_matrix
from inspector.config.roi import Roi
from inspector.events import ItemDecision, StationState
from ui import theme
from ui.controller import StationController
from ui.model import RejectEntry
from ui.render import blend_heatmap, fit, hot_spot, to_bgr
from ui.widgets.common import panel

DISPLAY_FPS = 30
HOLD_MS = 700
STALE_DECISION_S = 0.5
STALE_AFTER_S = 2.0
FAST_LINE_ITEMS_PER_S = 35.0  # above it the live view samples the line at half rate


def anomaly_words(value: float, limit: float | None) -> str:
    """The anomaly value with the limit it is judged against (a bare number means little).

    Three decimals near the limit (limits lie near 1, and 0.9955 must not read as 1.00);
    one for values far above it.
    """

    def num(x: float) -> str:
        return f"{x:.3f}" if abs(x) < 10 else f"{x:.1f}"

    return f"anomaly {num(value)}" + (f" (limit {num(limit)})" if limit is not None else "")


def describe(d: ItemDecision | None, anomaly_limit: float | None = None) -> tuple[str, str]:
    """Headline and detail for a decision: what the operator reads first."""
    if d is None:
        return "INSPECTING…", ""
    if d.accept:
        return "ACCEPT", f"confidence {d.confidence:.2f}" if d.confidence is not None else ""
    if d.reason == "not_inspected":
        cause = d.not_inspected.value.replace("_", " ") if d.not_inspected else ""
        if d.not_inspected is not None and d.not_inspected.value == "pose" and d.detail:
            cause = f"pose · {d.detail}"  # not located, or where the model was not validated
        return "NOT INSPECTED", cause
    head = f"REJECT · {d.reason.replace('_', ' ')}"
    parts = []
    if d.pocket_index is not None:
        parts.append(f"pocket {d.pocket_index}")
    if d.confidence is not None:
        parts.append(f"conf {d.confidence:.2f}")
    if d.anomaly is not None:
        parts.append(anomaly_words(d.anomaly, anomaly_limit))
    return head, " · ".join(parts)


CAPTION_GAP = "    "  # between the detail line and the item number


def fit_detail(detail: str, item: str, font: QFont, width: int) -> str:
    """The detail line, cut short with an ellipsis where it would run into the item number."""
    if not detail:
        return ""
    fm = QFontMetrics(font)
    room = width - fm.horizontalAdvance(CAPTION_GAP + item)
    return fm.elidedText(detail, Qt.TextElideMode.ElideRight, max(room, 0))


def _headline_size(frame: QRect) -> int:
    """Pixel size of the headline over a frame of this size (before it shrinks to fit its width)."""
    return max(18, min(40, int(frame.height() * 0.075)))


def _band_height(size: int) -> int:
    """Height of the dark band behind a headline of ``size`` pixels."""
    return int(size * 1.9)


class FrameCanvas(QWidget):
    """Paints one frame scaled to fit, with the decision overlays on top."""

    def __init__(self, placeholder: str = "No frame yet", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(220, 140)  # scales the frame down on a 1366 x 768 panel
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)  # we fill every pixel: skip the parent's paint
        self.placeholder = placeholder
        self.image: np.ndarray | None = None
        self.decision: ItemDecision | None = None
        self.rois: Sequence[Roi] | None = None
        self.registration: RegistrationSpec | None = None  # draws where the item was found (decision.pose)
        self.heat: np.ndarray | None = None
        self.anomaly_limit: float | None = None  # the station's anomaly threshold, shown beside the value
        self.stale: str | None = None  # shown over the frame when it is not live any more
        self._cache_key: tuple[int, int, int, int] | None = None
        self._cache: tuple[QImage, np.ndarray] | None = None

    def show_frame(
        self,
        image: np.ndarray | None,
        decision: ItemDecision | None,
        *,
        rois: Sequence[Roi] | None = None,
        heat: np.ndarray | None = None,
        anomaly_limit: float | None = None,
        registration: RegistrationSpec | None = None,
    ) -> None:
        self.image, self.decision, self.rois, self.heat = image, decision, rois, heat
        self.anomaly_limit = anomaly_limit
        self.registration = registration
        self.update()

    def set_stale(self, text: str | None) -> None:
        if text != self.stale:
            self.stale = text
            self.update()

    def clear(self, placeholder: str | None = None) -> None:
        if placeholder is not None:
            self.placeholder = placeholder
        self.show_frame(None, None)

    def _scaled(self, width: int, height: int) -> tuple[QImage, np.ndarray] | None:
        if self.image is None:
            return None
        key = (id(self.image), id(self.heat), width, height)
        if key != self._cache_key:
            arr = fit(to_bgr(self.image), width, height)
            if self.heat is not None:
                arr = blend_heatmap(arr, self.heat)
            # 32-bit BGRX is the backing store's own layout, so drawImage is a plain copy; the
            # conversion happens here in OpenCV, which releases the GIL (QPainter does not).
            arr = cv2.cvtColor(arr, cv2.COLOR_BGR2BGRA)
            h, w = arr.shape[:2]
            # The QImage borrows ``arr``; both are cached together so the buffer outlives it.
            qimg = QImage(arr.data, w, h, 4 * w, QImage.Format.Format_RGB32)  # type: ignore[call-overload]
            self._cache = (qimg, arr)
            self._cache_key = key
        return self._cache

    def paintEvent(self, event: QPaintEvent | None) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#0b0e12"))
        border = 10
        area = self.rect().adjusted(border, border, -border, -border)
        scaled = self._scaled(max(1, area.width()), max(1, area.height()))
        if scaled is None or self.image is None:
            p.setPen(QColor(theme.TEXT_DIM))
            p.setFont(theme.font(20, bold=True))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.placeholder)
            p.end()
            return
        qimg, _ = scaled
        x0 = area.x() + (area.width() - qimg.width()) // 2
        y0 = area.y() + (area.height() - qimg.height()) // 2
        p.drawImage(x0, y0, qimg)
        s = qimg.width() / self.image.shape[1]
        d = self.decision
        colour = QColor(theme.decision_colour(None if d is None else d.accept, None if d is None else d.reason))
        if self.stale:
            colour = QColor(theme.IDLE)  # an old decision must not glow green or red as if it were live
        frame_rect = QRect(x0, y0, qimg.width(), qimg.height())
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        matrix = self._pose_matrix()
        self._paint_rois(p, x0, y0, s, matrix)
        self._paint_pose(p, x0, y0, s, matrix, QRect(x0, y0, qimg.width(), qimg.height()))
        if self.heat is not None:
            hx, hy = hot_spot(self.heat)
            p.setPen(QPen(QColor("white"), 4))
            r = max(14, int(qimg.width() * 0.04))
            p.drawEllipse(QRectF(x0 + hx * s - r, y0 + hy * s - r, 2 * r, 2 * r))
        p.setPen(QPen(colour, border))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(frame_rect.adjusted(-border // 2, -border // 2, border // 2, border // 2))
        self._paint_caption(p, frame_rect, colour)
        if self.stale:
            p.fillRect(frame_rect, QColor(0, 0, 0, 150))
            f = theme.font(10, bold=True)
            f.setPixelSize(max(18, min(34, int(frame_rect.height() * 0.06))))
            p.setFont(f)
            p.setPen(QColor(theme.NOT_INSPECTED))
            p.drawText(frame_rect, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.stale)
        p.end()

    def _pose_matrix(self) -> np.ndarray | None:
        """Reference -> frame coordinates of the shown item, where registration found it."""
        spec, d = self.registration, self.decision
        if spec is None or d is None or d.pose is None:
            return None
        turn = d.pose["angle_deg"] if spec.align_rotation else 0.0
        return pose_matrix(spec.reference, d.pose["dx"], d.pose["dy"], turn)

    def _paint_pose(self, p: QPainter, x0: int, y0: int, s: float, matrix: np.ndarray | None, frame: QRect) -> None:
        """The located anchor with its axis, and the pose in words (dx, dy, turn, match score)."""
        spec, d = self.registration, self.decision
        if spec is None or d is None or d.pose is None or matrix is None:
            return
        ref = spec.reference
        ax, ay = matrix @ np.array([ref.x, ref.y, 1.0])
        vertical = spec.reference.height > spec.reference.width  # a vial: its axis runs down the frame
        reach = 0.25 * (ref.height if vertical else ref.width)
        direction = np.array([0.0, -reach]) if vertical else np.array([reach, 0.0])
        tx, ty = matrix[:, :2] @ direction
        refused = d.not_inspected is not None and d.not_inspected.value == "pose"
        colour = QColor(theme.NOT_INSPECTED if refused else "#7fd1ff")
        cx, cy = x0 + ax * s, y0 + ay * s
        p.setPen(QPen(colour, 3))
        p.drawLine(QPointF(cx, cy), QPointF(cx + tx * s, cy + ty * s))
        r = 9.0
        p.drawLine(QPointF(cx - r, cy), QPointF(cx + r, cy))
        p.drawLine(QPointF(cx, cy - r), QPointF(cx, cy + r))
        pose = d.pose
        text = f"Δ {pose['dx']:+.1f}, {pose['dy']:+.1f} px  {pose['angle_deg']:+.1f}°  match {pose['score']:.2f}"
        if not spec.align_rotation:
            text = f"Δ {pose['dx']:+.1f}, {pose['dy']:+.1f} px  match {pose['score']:.2f}"
        f = theme.font(10, bold=True)
        f.setPixelSize(max(12, min(18, int(self.height() * 0.028))))
        p.setFont(f)
        fm = QFontMetrics(f)
        w, h = fm.horizontalAdvance(text) + 12, fm.height() + 6
        # Top right, under the headline's band: clear of the pockets.
        bx = max(frame.right() - w - 6, frame.x())
        by = frame.y() + _band_height(_headline_size(frame)) + 6
        p.fillRect(QRectF(bx, by, w, h), QColor(0, 0, 0, 170))
        p.setPen(colour)
        p.drawText(QRectF(bx, by, w, h), Qt.AlignmentFlag.AlignCenter, text)

    def _paint_rois(self, p: QPainter, x0: int, y0: int, s: float, matrix: np.ndarray | None = None) -> None:
        if not self.rois:
            return
        d = self.decision
        reasons = d.unit_reasons if d is not None and d.unit_reasons else None
        label_font = QFont(theme.font(10, bold=True))
        label_font.setPixelSize(max(14, int(self.rois[0].h * s * 0.2)))
        p.setFont(label_font)
        for i, roi in enumerate(self.rois):
            rect = QRectF(x0 + roi.x * s, y0 + roi.y * s, roi.w * s, roi.h * s)
            ok = reasons is None or reasons[i] == "ok"
            deciding = d is not None and d.pocket_index == i
            colour = QColor(theme.ACCEPT if ok else theme.REJECT) if reasons is not None else QColor("#c8d2dc")
            p.setPen(QPen(colour, 6 if deciding else (2 if ok else 4)))
            p.setBrush(Qt.BrushStyle.NoBrush)
            if matrix is None:
                p.drawRect(rect)
            else:  # the pocket where registration placed it: moved and turned with the card
                corners = np.array([[roi.x, roi.y, 1.0], [roi.x + roi.w, roi.y, 1.0],
                                    [roi.x + roi.w, roi.y + roi.h, 1.0], [roi.x, roi.y + roi.h, 1.0]])  # fmt: skip
                placed = corners @ matrix.T
                p.drawPolygon(QPolygonF([QPointF(x0 + px * s, y0 + py * s) for px, py in placed]))
                rect = QRectF(x0 + placed[0][0] * s, y0 + placed[0][1] * s, roi.w * s, roi.h * s)
            tag = QRectF(rect.x(), rect.y(), label_font.pixelSize() * 1.6, label_font.pixelSize() * 1.3)
            p.fillRect(tag, QColor(0, 0, 0, 170))
            p.setPen(colour)
            p.drawText(tag, Qt.AlignmentFlag.AlignCenter, str(i))

    def _paint_caption(self, p: QPainter, frame: QRect, colour: QColor) -> None:
        head, detail = describe(self.decision, self.anomaly_limit)
        size = _headline_size(frame)
        pad = int(size * 0.4)
        f = theme.font(10, bold=True)
        f.setPixelSize(size)
        # Shrink a long headline until it fits: it is the one thing read from across the line.
        while size > 14 and QFontMetrics(f).horizontalAdvance(head) > frame.width() - 2 * pad:
            size -= 2
            f.setPixelSize(size)
        # A narrow frame (a vial on a small panel): the band reaches past it, over the canvas, before
        # the headline is cut.
        width = min(max(frame.width(), QFontMetrics(f).horizontalAdvance(head) + 2 * pad), self.width())
        left = max(0, min(frame.center().x() - width // 2, self.width() - width))
        band = QRect(left, frame.y(), width, _band_height(size))
        p.fillRect(band, QColor(0, 0, 0, 175))
        p.setFont(f)
        p.setPen(colour if self.decision is not None else QColor(theme.TEXT))
        p.drawText(band.adjusted(pad, 0, -pad, 0), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, head)
        if self.decision is None:
            return
        item = f"item {self.decision.item_id}"
        small = theme.font(10, bold=True)
        small.setPixelSize(max(14, min(26, int(frame.height() * 0.045))))
        line = f"{detail}{CAPTION_GAP}{item}" if detail else item
        while small.pixelSize() > 12 and QFontMetrics(small).horizontalAdvance(line) > frame.width() - 2 * pad:
            small.setPixelSize(small.pixelSize() - 1)
        h = int(small.pixelSize() * 1.8)
        low = QRect(frame.x(), frame.bottom() - h + 1, frame.width(), h)
        p.fillRect(low, QColor(0, 0, 0, 175))
        p.setFont(small)
        p.setPen(QColor(theme.TEXT))
        inner = low.adjusted(pad, 0, -pad, 0)
        p.drawText(inner, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, item)
        detail = fit_detail(detail, item, small, inner.width())
        if detail:
            p.drawText(inner, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, detail)


class LiveView(QWidget):
    """Polls the station's display tap on a QTimer (up to 30 fps); the display may skip frames.

    When items come faster than the display can show them anyway (above ~30 items/s) the view
    is a sample of the line, not a film of it: it then paints at half the rate, which halves
    the GUI's share of the CPU and the GIL exactly when the pipeline is busiest.
    """

    def __init__(self, controller: StationController, parent: QWidget | None = None, *, fps: int = DISPLAY_FPS) -> None:
        super().__init__(parent)
        self.controller = controller
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        box = panel(self)
        inner = QVBoxLayout(box)
        inner.setContentsMargins(8, 6, 8, 8)
        title = QLabel("LIVE")
        title.setObjectName("dim")
        title.setFont(theme.font(13, bold=True))
        self.canvas = FrameCanvas("Station idle: no frame")
        inner.addWidget(title)
        inner.addWidget(self.canvas, 1)
        lay.addWidget(box)
        self._shown: object | None = None
        self._shown_at = 0.0
        self._changed_at = time.monotonic()
        self.frames_shown = 0
        self.fps = max(1, min(fps, DISPLAY_FPS))
        self._rate_mark: tuple[float, int] | None = None  # (time, item id) to estimate items/s
        self.timer = QTimer(self)
        self.timer.setInterval(1000 // self.fps)
        self.timer.timeout.connect(self.poll)
        self.timer.start()
        controller.session_changed.connect(self._session_changed)

    def _session_changed(self) -> None:
        if self.controller.client is None:
            self._shown = None
            self.canvas.clear("Loading…" if self.controller.phase == "loading" else "No station")

    def _stale_reason(self, state: StationState, now: float, after_s: float) -> str | None:
        """Say so when the picture is not live: an old frame must never pass for the current item."""
        if self._shown is None:
            return None
        if state is StationState.FAULT:
            return "NO LIVE IMAGE\nstation in fault"
        if state is StationState.RUNNING and now - self._changed_at > after_s:
            return f"NO NEW FRAME FOR {now - self._changed_at:.0f} s"
        if state in (StationState.IDLE, StationState.STOPPING):
            return "LINE STOPPED\nlast frame of the batch"
        return None

    def poll(self) -> None:
        client = self.controller.client
        if client is None:
            return
        latest = client.latest()
        now = time.monotonic()
        info = client.info
        state = self.controller.state or StationState.IDLE
        self.canvas.set_stale(self._stale_reason(state, now, max(STALE_AFTER_S, 3 * info.line_period_s)))
        if latest is None:
            return
        decision = latest.decision
        if decision is None and now - self._shown_at < STALE_DECISION_S:
            # The newest frame is still being inspected: keep the last decided one rather than flicker.
            return
        shown = self._shown
        if isinstance(shown, tuple) and shown[0] is latest.token and shown[1] is decision:
            return
        self._shown, self._shown_at = (latest.token, decision), now
        self._changed_at = now
        self.canvas.show_frame(
            latest.image, decision, rois=info.rois, anomaly_limit=info.anomaly_threshold,
            registration=info.registration,
        )  # fmt: skip
        self.frames_shown += 1
        self._adapt_rate(now, latest.item_id)

    def _adapt_rate(self, now: float, item_id: int) -> None:
        mark = self._rate_mark
        if mark is None or item_id < mark[1]:
            self._rate_mark = (now, item_id)
            return
        if now - mark[0] < 2.0:
            return
        items_per_s = (item_id - mark[1]) / (now - mark[0])
        self._rate_mark = (now, item_id)
        fast = items_per_s > FAST_LINE_ITEMS_PER_S
        interval = 1000 // (max(1, self.fps // 2) if fast else self.fps)
        if interval != self.timer.interval():
            self.timer.setInterval(interval)


class LastRejectView(QWidget):
    """Holds the most recent reject (with its heat map when ready) until the next one."""

    def __init__(self, controller: StationController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.entry: RejectEntry | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        box = panel(self)
        inner = QVBoxLayout(box)
        inner.setContentsMargins(8, 6, 8, 8)
        self.title = QLabel("LAST REJECT")
        self.title.setObjectName("dim")
        self.title.setFont(theme.font(13, bold=True))
        self.canvas = FrameCanvas("No reject in this batch")
        inner.addWidget(self.title)
        inner.addWidget(self.canvas, 1)
        lay.addWidget(box)
        self._newest: RejectEntry | None = None
        # Hold each reject for a moment: at tens of rejects per second nobody could read them,
        # and each repaint costs the pipeline GIL time.
        self.timer = QTimer(self)
        self.timer.setInterval(HOLD_MS)
        self.timer.timeout.connect(self._tick)
        self.timer.start()
        controller.reject_added.connect(self._arrived)
        controller.reject_updated.connect(self._updated)
        controller.batch_started.connect(lambda _bid: self._reset())

    def _arrived(self, entry: RejectEntry) -> None:
        self._newest = entry
        if self.entry is None:
            self.show_entry(entry)

    def _tick(self) -> None:
        if self._newest is not None and self._newest is not self.entry:
            self.show_entry(self._newest)

    def _reset(self) -> None:
        self.entry = self._newest = None
        self.title.setText("LAST REJECT")
        self.canvas.clear("No reject in this batch")

    def show_entry(self, entry: RejectEntry) -> None:
        self.entry = entry
        client = self.controller.client
        rois = client.info.rois if client is not None else None
        limit = client.info.anomaly_threshold if client is not None else None
        registration = client.info.registration if client is not None else None
        self.canvas.show_frame(
            entry.image, entry.decision, rois=rois, heat=entry.heatmap, anomaly_limit=limit, registration=registration
        )
        heat = " · heat map" if entry.heatmap is not None else ""
        self.title.setText(f"LAST REJECT · item {entry.decision.item_id}{heat}")

    def _updated(self, entry: RejectEntry) -> None:
        if entry is self.entry:
            self.show_entry(entry)
