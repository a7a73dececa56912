"""The one normaliser between GA and every upstream dialect, one module per dialect.

======================  =====================================================================
module                  what it holds
======================  =====================================================================
``base``                the interface the upstream client uses (:class:`UpstreamTranslator`,
                        :class:`Routed`) and each dialect's :class:`Capabilities`
``renames``             GA, Azure (GA on the wire), OpenAI beta and xAI: renamed fields
``lifecycle``           the GA response/item lifecycle rtbridge makes for upstreams without one
``synthetic``           what the Gemini and GPT-Live translators share (session, local answers)
``gemini``              Gemini Live ``BidiGenerateContent``
``gpt_live``            OpenAI GPT-Live ``/v1/live/sessions``
======================  =====================================================================

:func:`upstream_translator` makes the translator for one upstream connection.
"""

from __future__ import annotations

from bridge.config import Dialect
from bridge.realtime.dialects.base import (
    CAPABILITIES,
    Capabilities,
    Handling,
    Routed,
    UpstreamTranslator,
)
from bridge.realtime.dialects.gemini import GeminiTranslator
from bridge.realtime.dialects.gpt_live import GptLiveTranslator
from bridge.realtime.dialects.renames import XAI_VOICES, Translator, snake_to_dotted

__all__ = [
    "CAPABILITIES",
    "XAI_VOICES",
    "Capabilities",
    "GeminiTranslator",
    "GptLiveTranslator",
    "Handling",
    "Routed",
    "Translator",
    "UpstreamTranslator",
    "snake_to_dotted",
    "upstream_translator",
]


def upstream_translator(
    dialect: Dialect,
    *,
    model: str,
    resume_handle: str | None = None,
    delegation_model: str = "gpt-5.5",
) -> UpstreamTranslator:
    """The translator for one connection to an upstream speaking ``dialect``.

    ``resume_handle`` (Gemini): resume that session instead of starting a new one.
    """
    if dialect is Dialect.GEMINI:
        return GeminiTranslator(model, resume_handle=resume_handle)
    if dialect is Dialect.GPT_LIVE:
        return GptLiveTranslator(model, delegation_model=delegation_model)
    return Translator(dialect)
