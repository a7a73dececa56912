"""Request bodies of the control plane (pydantic: an invalid body is a 422 naming the field)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from media.recording import RecordingMode

__all__ = [
    "AcceptBody",
    "DtmfBody",
    "OriginateBody",
    "ReferBody",
    "RejectBody",
    "SayBody",
    "SessionBody",
    "TransferBody",
]

# Targets are judged by the profile's destination policy (bridge.destinations), which refuses
# malformed ones with a precise reason and records a security event; the models only bound them.
_TARGET_MAX = 2048


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OriginateBody(_Body):
    target: str = Field(
        min_length=1, max_length=_TARGET_MAX, description="sip:, sips: or tel: URI (allowlisted)"
    )
    profile: str = Field(default="default", min_length=1, max_length=64)
    trunk: str | None = Field(default=None, min_length=1, max_length=64)
    caller: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9+*#._-]{1,64}$", description="caller id (user part)"
    )
    record: RecordingMode | None = Field(
        default=None, description="record this call (off, stereo, mixed); else the profile's"
    )


class TransferBody(_Body):
    target: str = Field(min_length=1, max_length=_TARGET_MAX)


class ReferBody(_Body):
    target_uri: str = Field(min_length=1, max_length=_TARGET_MAX)


class DtmfBody(_Body):
    digits: str = Field(pattern=r"^[0-9*#A-D]{1,32}$", description="0-9, *, #, A-D")


class SayBody(_Body):
    text: str = Field(min_length=1, max_length=8000)
    role: Literal["user", "system"] = "user"
    respond: bool = Field(default=True, description="queue a response.create after it")


class SessionBody(BaseModel):
    """A (partial) GA session object; the leg keeps its audio formats and telephony tools."""

    model_config = ConfigDict(extra="allow")
    type: Literal["realtime"] = "realtime"
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    audio: dict[str, Any] | None = None

    @field_validator("audio")
    @classmethod
    def _audio_parts_are_objects(cls, audio: dict[str, Any] | None) -> dict[str, Any] | None:
        for part in ("input", "output"):
            value = None if audio is None else audio.get(part)
            if value is not None and not isinstance(value, dict):
                raise ValueError(f"audio.{part} must be an object")
        return audio


class AcceptBody(SessionBody):
    model: str | None = Field(default=None, max_length=128)
    record: RecordingMode | None = Field(
        default=None, description="rtbridge: record this call (off, stereo, mixed)"
    )


class RejectBody(_Body):
    status_code: int = Field(default=603, ge=400, le=699)
