"""Image bytes: validation and re-encoding, the media store, and fetching reference images."""

__all__: list[str] = []
