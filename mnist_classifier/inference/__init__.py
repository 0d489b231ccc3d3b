"""Inference: model files and the ``Predictor``. The lightest part of the package: it imports
neither training, augmentation, data download nor plotting code (a test reads the imports)."""
