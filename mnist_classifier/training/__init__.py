"""Training: the loop (``trainer``), what hangs on it (``callbacks``, ``checkpoint``), its
configuration (``config``), augmentation, and the wiring from a configuration (``build``)."""
