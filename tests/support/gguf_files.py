"""GGUF files as city96's FLUX.1 / SD 3.5 conversions are laid out, written with the `gguf` package.

Weights whose rows fit the quantisation's blocks are quantised; the rest (biases, norms, the odd 4-D
patch conv) stay F32, as in the published files. Names are the single file's (BFL or Stability).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_gguf(state: dict[str, Any], path: Path, quant: str = "Q8_0", arch: str = "flux") -> Path:
    """`state` (name -> torch tensor) to `path` with 2-D weights in `quant` (Q8_0, Q4_0, ... as gguf names them)."""
    import gguf
    import numpy as np

    qtype = gguf.GGMLQuantizationType[quant]
    block, _ = gguf.GGML_QUANT_SIZES[qtype]
    writer = gguf.GGUFWriter(str(path), arch=arch)
    for name, tensor in state.items():
        data = tensor.detach().float().cpu().numpy()
        if data.ndim == 2 and data.shape[-1] % block == 0:
            writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
        else:
            writer.add_tensor(name, np.ascontiguousarray(data, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
