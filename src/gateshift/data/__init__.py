"""Video data: annotation parsers, readers, sampling, clip transforms, datasets.

Never imports :mod:`gateshift.models` or :mod:`gateshift.engine`.
"""
