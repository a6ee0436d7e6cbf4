"""Deprecated alias of :mod:`awrs_adapters.protocol` (renamed; this path works for one release).

Example::

    >>> from awrs_adapters.protocol import *   # the new path
"""

from __future__ import annotations

import sys
import warnings

from . import protocol

warnings.warn(
    "awrs_adapters.constraint was renamed to awrs_adapters.protocol; import from the new path "
    "(the old one will be removed in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = protocol
