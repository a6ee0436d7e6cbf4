"""Shared test fixtures: exact FunctionLM problems and small constraint implementations."""

from __future__ import annotations

import math
import os
import zlib

import numpy as np
import pytest
from hypothesis import settings
from pydantic import BaseModel, field_validator

from awrs_adapters.lm import FunctionLM
from awrs_adapters.protocol import BoundConstraint

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("ci")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two pytest-xdist workers on the two cores; a worker's model
    # forwards on two torch threads each would oversubscribe them
    import torch

    torch.set_num_threads(1)


class F(BaseModel):
    """Take an odd number. (A tool argument model with a validator no schema expresses.)"""

    x: int

    @field_validator("x")
    @classmethod
    def odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError("x must be odd")
        return v


class SetBound(BoundConstraint):
    """A real (if tiny) bound constraint: token ids in ``allowed`` pass, state-free.

    ``fast`` makes it expose its exact mask like a compiled automaton does.
    """

    def __init__(self, V: int, allowed: set[int], *, fast: bool = False, slow: bool = True):
        self.V = V
        self.allowed = frozenset(allowed)
        self.has_fast = fast
        self.has_slow = slow
        self.calls = 0

    def initial_state(self):
        return 0

    def check(self, state, token_id: int) -> bool:
        self.calls += 1
        return token_id in self.allowed

    def advance(self, state, token_id: int):
        return 0

    def fast_mask(self, state):
        if not self.has_fast:
            return None
        m = np.zeros(self.V, dtype=bool)
        m[list(self.allowed)] = True
        return m


def hashed_lm(tokens: list[bytes], eos: int, seed: int = 0, eos_bias: float = 0.0) -> FunctionLM:
    """A FunctionLM whose next-token distribution is a fixed pseudo-random function of the prefix."""
    V = len(tokens)

    def next_logprobs(prefix: tuple[int, ...]) -> np.ndarray:
        h = zlib.crc32(repr((seed, prefix)).encode())
        g = np.random.default_rng(h)
        logits = g.normal(0.0, 1.2, size=V)
        logits[eos] += eos_bias
        return logits - np.logaddexp.reduce(logits)

    return FunctionLM(tokens, eos, next_logprobs)


@pytest.fixture
def abc_lm() -> FunctionLM:
    return hashed_lm([b"a", b"b", b"c", b""], 3, seed=7)


def log(x: float) -> float:
    return math.log(x) if x > 0 else -math.inf
