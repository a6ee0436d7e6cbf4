"""Deprecated alias of :mod:`awrs_adapters.constraints.index_cache` (renamed; this path works for one release).

Example::

    >>> from awrs_adapters.constraints.index_cache import *   # the new path
"""

from __future__ import annotations

import sys
import warnings

from . import index_cache

warnings.warn(
    "awrs_adapters.constraints.cache was renamed to awrs_adapters.constraints.index_cache; import from the new path "
    "(the old one will be removed in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = index_cache
