"""A record that dumps the keys its producer gave it, in their order, and nothing else.

The typed records of a run (tools/selection/records.py, tools/training/records.py, the phase results
in ml_expert/phases.py) replaced plain dicts; dumping them this way keeps the state, the findings
and metrics.json as they were written when they were dicts. Pydantic only: light to import."""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidatorFunctionWrapHandler,
    model_serializer,
    model_validator,
)


class Written(BaseModel):
    """A record that dumps the keys its producer gave it, in their order, and no default it was not
    given: the state, the findings and metrics.json read as they did when these were plain dicts."""

    _order: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _remember_order(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        model = handler(value)
        if isinstance(value, dict) and isinstance(model, Written):
            model._order = list(value)
        return model

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out = handler(self)
        given = self.model_fields_set | set(self.__pydantic_extra__ or {})
        order = [k for k in self._order if k in out] + [k for k in out if k not in self._order]
        return {k: out[k] for k in order if k in given}
