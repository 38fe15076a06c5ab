"""Image providers: each turns a :class:`bot.interfaces.GenerationTask` into images."""
