"""Quantised storage of the flow-matching transformers (fp8, GGUF) and text-encoder offload, for 24 GB cards.

Nothing here imports torch at import time; `transformer` and `offload` do it when called.
"""

from openesd.generation.quant.offload import OFFLOAD_MODES, offload_text_encoders
from openesd.generation.quant.transformer import MODES, load_flow_transformer, to_fp8

__all__ = ["MODES", "OFFLOAD_MODES", "load_flow_transformer", "offload_text_encoders", "to_fp8"]
