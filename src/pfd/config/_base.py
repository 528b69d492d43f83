"""Shared base of the config models: finite values, physical bounds."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)


class _Model(BaseModel):
    # every float finite: NaN or inf (YAML '.nan', '.inf', '1e400') is refused
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


#: Bounds that fit the physics: temperatures in K, pressures in bar (±1 TPa),
#: MD and training steps, supercell multiples.
MAX_TEMPERATURE_K = 1e5
MAX_STEPS = 10**9
MAX_TIMESTEP_FS = 20.0
Pressure = Annotated[float, Field(ge=-1e7, le=1e7)]
Multiple = Annotated[int, Field(ge=1, le=1000)]


def check_temperatures(key: str, values: list[float]) -> None:
    """Temperatures must be > 0 K and below MAX_TEMPERATURE_K."""
    for t in values:
        if not 0 < t < MAX_TEMPERATURE_K:
            raise ValueError(
                f"{key} must be > 0 K and < {MAX_TEMPERATURE_K:g} K, got {t}"
            )
