"""Where data comes from and how raw input becomes model input.

Kept free of imports on purpose: ``data.preprocessing`` and ``data.images`` are what inference
needs, and importing them must not pull in the download code of ``data.mnist``.
"""
