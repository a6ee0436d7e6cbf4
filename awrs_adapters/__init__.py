"""awrs-adapters: constrained generation that samples from the right distribution.

Overview: ``generate(lm, prompt, constraint)`` runs sequential Monte Carlo with adaptive
weighted rejection sampling (AWRS-SMC) and returns weighted particles whose posterior
targets ``P(x) ∝ Q(x | prompt)·C(x)``, the model conditioned on the constraint, rather
than the biased distribution of token masking.

Example::

    >>> from awrs_adapters import generate
    >>> from awrs_adapters.lm import FunctionLM
    >>> lm = FunctionLM([b"a", b"b", b""], 2, lambda prefix: [0.0, 0.0, -1.0])
    >>> print(generate(lm, None, lambda s: s.endswith("a"), max_tokens=4, seed=0).posterior)
    {'abba': 0.775..., 'baba': 0.149..., 'bbba': 0.074...}
"""

from __future__ import annotations

from .api import DEFAULT_MAX_TOKENS, Event, generate, make_rng, stream
from .awrs import AWRS, TokenDraw
from .batching import BatchError, Request, generate_batch
from .errors import (
    AWRSError,
    ConfigError,
    ConstraintError,
    GenerationTimeoutError,
    LMError,
    ModelNotFoundError,
    NoValidSampleError,
    VocabularyError,
)
from .results import Particle, SMCResult, Stats
from .smc import METHODS, SMC
from .vocab import Vocabulary

__version__ = "0.1.0"

__all__ = [
    "AWRS",
    "AWRSError",
    "DEFAULT_MAX_TOKENS",
    "BatchError",
    "ConfigError",
    "ConstraintError",
    "Event",
    "GenerationTimeoutError",
    "LMError",
    "METHODS",
    "ModelNotFoundError",
    "NoValidSampleError",
    "Particle",
    "Request",
    "SMC",
    "SMCResult",
    "Stats",
    "TokenDraw",
    "VocabularyError",
    "Vocabulary",
    "__version__",
    "generate",
    "generate_batch",
    "make_rng",
    "stream",
]
