"""Task definitions the benchmarks share: the ``Person`` schemas, prompts and the date format.

Example::

    from benchmarks.tasks import Person, parses
    assert parses(Person, '{"name": "Ada Lovelace", "age": 36}')
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

__all__ = ["DATE", "PERSON_PROMPT", "Person", "ValidatedPerson", "parses"]


class Person(BaseModel):
    """The plain JSON-schema task (no validators)."""

    name: str
    age: int


class ValidatedPerson(BaseModel):
    """The slow-path task: constrained fields and a validator the schema cannot express."""

    name: str = Field(min_length=3, max_length=40)
    age: int = Field(ge=0, le=130)

    @field_validator("name")
    @classmethod
    def full_name(cls, v: str) -> str:
        if len(v.split()) < 2:
            raise ValueError("give first and last name")
        return v


PERSON_PROMPT = [{"role": "user", "content": "Extract the person as JSON with name and age: "
                  "Ada Lovelace died at 36."}]

DATE = r"(19|20)[0-9]{2}-[01][0-9]-[0-3][0-9]"


def parses(model: type[BaseModel], text: str) -> bool:
    """True when ``text`` is valid JSON for ``model`` (validators included)."""
    try:
        model.model_validate_json(text)
        return True
    except ValueError:
        return False
