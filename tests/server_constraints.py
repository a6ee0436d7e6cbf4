"""Constraints the server tests register (``awrs serve --constraints server_constraints``)."""

from __future__ import annotations

from pydantic import BaseModel, field_validator

from awrs_adapters.constraints import Predicate

__all__ = ["EvenAge", "no_letter_e"]


class EvenAge(BaseModel):
    """A person's age, even and below 100 (a validator the schema cannot express)."""

    age: int

    @field_validator("age")
    @classmethod
    def even(cls, v: int) -> int:
        if v % 2 or not 0 <= v < 100:
            raise ValueError("age must be even and in [0, 100)")
        return v


no_letter_e = Predicate(complete=lambda s: 1 <= len(s) and "e" not in s.lower(),
                        prefix=lambda s: "e" not in s.lower(), name="no_letter_e")
