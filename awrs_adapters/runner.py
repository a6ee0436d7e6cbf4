"""Deprecated alias of :mod:`awrs_adapters.streaming` (renamed; this path works for one release).

Example::

    >>> from awrs_adapters.streaming import *   # the new path
"""

from __future__ import annotations

import sys
import warnings

from . import streaming

warnings.warn(
    "awrs_adapters.runner was renamed to awrs_adapters.streaming; import from the new path "
    "(the old one will be removed in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = streaming
