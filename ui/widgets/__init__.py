"""Station screen widgets; each receives the :class:`ui.controller.StationController` it shows."""
