"""Cameras: one interface (:mod:`inspector.camera.base`), a simulated twin, file replay and GenICam."""
