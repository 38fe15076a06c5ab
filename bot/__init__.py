"""bananabot: Nano Banana Pro and Nano Banana 2 images for Discord, Slack and a local playground."""

__all__: list[str] = []
