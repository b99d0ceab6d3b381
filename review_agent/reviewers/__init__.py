"""Who reviews a file: a language model, or the built-in offline reviewer."""
