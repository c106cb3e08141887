"""`mm`: the one tl.dot wrapper of the Triton kernels (fp32 accumulation, IEEE fp32, the interpreter's bf16 fix)."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def mm(a, b, IEEE: tl.constexpr, UPCAST: tl.constexpr):
    """a @ b with fp32 accumulation; IEEE keeps fp32 inputs out of TF32 to match the reference."""
    if UPCAST:
        # Triton's interpreter multiplies bf16/fp16 raw bits in tl.dot; their products are exact in fp32
        c = tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    elif IEEE:
        c = tl.dot(a, b, input_precision="ieee")
    else:
        c = tl.dot(a, b)
    return c
