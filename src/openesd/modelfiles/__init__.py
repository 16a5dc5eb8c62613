"""What a model file is, read without torch: key patterns (family, kind) and safetensors headers.

Both the API (checks at upload) and the worker (loading) use these, so they agree on what a file is.
"""
