"""Nano Banana Pro and Nano Banana 2 straight from the Google Gemini API (``generateContent``).

Modules: :mod:`.wire` (raw response shapes), :mod:`.translate` (pure request and response
translation), :mod:`.errors` (SDK and httpx failures to bananabot errors) and :mod:`.client`
(:class:`~bot.providers.gemini.client.GeminiProvider`).
Nothing is imported here so that importing the package does not load the SDK.
"""

__all__: list[str] = []
