"""Deprecated alias of :mod:`awrs_adapters.toy` (renamed; this path works for one release).

Example::

    >>> from awrs_adapters.toy import *   # the new path
"""

from __future__ import annotations

import sys
import warnings

from . import toy

warnings.warn(
    "awrs_adapters.examples was renamed to awrs_adapters.toy; import from the new path "
    "(the old one will be removed in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = toy
