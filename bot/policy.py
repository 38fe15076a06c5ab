"""Safety policy: the most permissive safety tolerance a channel allows, and forced content checks.

The neutral scale is Runware's ``providerSettings.google.safetyTolerance`` vocabulary
(seeds 000_*/001_*: ``high``, ``medium``, ``low``, ``none``, ``off``; "Use ``off`` to use
Google's defaults"). Runware passes the value to Google, whose safety settings use the
thresholds ``BLOCK_LOW_AND_ABOVE`` < ``BLOCK_MEDIUM_AND_ABOVE`` < ``BLOCK_ONLY_HIGH`` <
``BLOCK_NONE`` < ``OFF`` (google-genai ``HarmBlockThreshold``; provider-apis.md §4.3), and
the five words line up with those five thresholds one to one. So the order from strictest to
most permissive is low < medium < high < none < off. Runware documents ``none`` as its
default, which is why an unset tolerance counts as ``none`` when clamping.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from bot.models import ImageRequest, SafetyTolerance

__all__ = [
    "PROVIDER_DEFAULT_TOLERANCE",
    "TOLERANCE_ORDER",
    "TOLERANCE_SCALE",
    "ChannelPolicy",
    "PolicyDecision",
    "apply_policy",
    "combine",
]

TOLERANCE_ORDER: tuple[SafetyTolerance, ...] = ("low", "medium", "high", "none", "off")
"""Strictest first."""

PROVIDER_DEFAULT_TOLERANCE: SafetyTolerance = "none"
"""Runware docs: safetyTolerance ``default: none``."""


@dataclass(frozen=True, slots=True)
class ToleranceMapping:
    """One neutral level on each provider's scale.

    Attributes:
        runware: ``providerSettings.google.safetyTolerance`` (seeds 000_*/001_*).
        runflow: ``safety_tolerance`` "1".."6", "1 is the most strict" (seed 002_*); Runflow's
            strictest level "1" has no Runware counterpart and is never chosen.
        gemini: ``HarmBlockThreshold`` for every harm category (google-genai types).
    """

    runware: SafetyTolerance
    runflow: str
    gemini: str


TOLERANCE_SCALE: dict[SafetyTolerance, ToleranceMapping] = {
    "low": ToleranceMapping("low", "2", "BLOCK_LOW_AND_ABOVE"),
    "medium": ToleranceMapping("medium", "3", "BLOCK_MEDIUM_AND_ABOVE"),
    "high": ToleranceMapping("high", "4", "BLOCK_ONLY_HIGH"),
    "none": ToleranceMapping("none", "5", "BLOCK_NONE"),
    "off": ToleranceMapping("off", "6", "OFF"),
}


def rank(level: SafetyTolerance) -> int:
    """0 for the strictest level, 4 for the most permissive."""
    return TOLERANCE_ORDER.index(level)


class ChannelPolicy(BaseModel):
    """What a workspace or channel allows.

    Attributes:
        max_tolerance: the most permissive safety tolerance allowed.
        force_check_content: always send Runware ``safety.checkContent: true``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tolerance: SafetyTolerance = "none"
    force_check_content: bool = False


def combine(workspace: ChannelPolicy, channel: ChannelPolicy | None) -> ChannelPolicy:
    """The effective policy: a channel can tighten its workspace's policy, never loosen it."""
    if channel is None:
        return workspace
    strictest = min(rank(workspace.max_tolerance), rank(channel.max_tolerance))
    return ChannelPolicy(
        max_tolerance=TOLERANCE_ORDER[strictest],
        force_check_content=workspace.force_check_content or channel.force_check_content,
    )


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """The request as it will run, and what to tell the person about the change."""

    request: ImageRequest
    notices: tuple[str, ...]


def apply_policy(request: ImageRequest, policy: ChannelPolicy) -> PolicyDecision:
    """Clamp the request's safety tolerance to the policy and force content checks.

    A request above the policy is clamped, and the person told; an unset tolerance that
    would default (Runware: ``none``) above the policy is set to the policy's maximum
    silently, so the provider's default can never bypass the channel's policy.
    """
    notices: list[str] = []
    updates: dict[str, object] = {}
    requested = request.safety_tolerance
    effective = requested or PROVIDER_DEFAULT_TOLERANCE
    if rank(effective) > rank(policy.max_tolerance):
        updates["safety_tolerance"] = policy.max_tolerance
        if requested is not None:
            notices.append(
                f"Safety tolerance {requested!r} is above this channel's limit; "
                f"used {policy.max_tolerance!r} instead."
            )
    if policy.force_check_content and not request.check_content:
        updates["check_content"] = True
    if not updates:
        return PolicyDecision(request, ())
    return PolicyDecision(request.model_copy(update=updates), tuple(notices))
