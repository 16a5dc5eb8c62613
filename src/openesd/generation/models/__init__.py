"""Checkpoints into diffusers pipelines: architecture detection, loading, the model cache, the device."""
