"""Offline tools on model files (torch): checkpoint merging, and diffusers components written as single files.

Used by the legacy merge, the trainer's LoRA export and the test fixtures; `modelfiles/` stays torch-free.
"""
