"""Time check_backward / check_forward at 2x4x4 (target: check_backward under 10 s on 2 cores),
and show that the budget bounds a check that cannot finish (1x16x16 forward, budget 2 s).

    PYTHONPATH=. python3 benchmarks/bench_check.py
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import bn_implementations as B  # noqa: E402
from symbolic_bn.checks.check import check_backward, check_forward  # noqa: E402


def main(shape=(2, 4, 4)):
    print(f"check_backward / check_forward at {shape[0]}x{shape[1]}x{shape[2]}, symbolic eps")
    for fn in B.CORRECT_BACKWARDS + [B.backward_into_grad_out, B.wrong_missing_xhat_term, B.wrong_dx_zeros]:
        t = time.perf_counter()
        cert = check_backward(fn, shape)
        dt = time.perf_counter() - t
        per = ", ".join(f"{ob.name.split('.')[1]} {ob.status} {ob.seconds:.2f}s" for ob in cert)
        print(f"  {fn.__name__:<28} {dt:6.2f} s  ({per})")
    for fn in B.CORRECT_FORWARDS:
        t = time.perf_counter()
        cert = check_forward(fn, shape)
        print(f"  {fn.__name__:<28} {time.perf_counter() - t:6.2f} s  ({cert['forward.y'].status})")
    t = time.perf_counter()
    cert = check_forward(B.forward_plain, (1, 16, 16), budget=2)
    print(f"  forward_plain 1x16x16 budget=2 {time.perf_counter() - t:6.2f} s  ({cert['forward.y'].status})")


if __name__ == "__main__":
    main()
