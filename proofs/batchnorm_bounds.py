#!/usr/bin/env python3
"""Prove the inference BatchNorm bound rules (IBP, affine, derivative, second derivative).

Prints every obligation (name, status, assumptions, method, seconds), then a one-line summary.
Exit status 0 only when every obligation is proved.

    PYTHONPATH=. python3 proofs/batchnorm_bounds.py [--budget SECONDS] [--json FILE] [--verbose]
"""
from __future__ import annotations

import argparse
import os
import sys

try:
    from symbolic_bn.bounds import prove
except ImportError:  # run from a checkout without PYTHONPATH
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from symbolic_bn.bounds import prove


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=60.0, help="seconds per obligation (default 60)")
    ap.add_argument("--json", metavar="FILE", help="also write the certificate as JSON")
    ap.add_argument("--verbose", action="store_true", help="also print statements and details")
    args = ap.parse_args(argv)
    if not args.budget > 0:
        ap.error("--budget must be positive")
    cert = prove(budget=args.budget)
    for ob in cert:
        print(f"[{ob.status:9s}] {ob.name}  ({ob.seconds:.3f} s)  lean: {ob.lean_name or '-'}")
        if args.verbose:
            print(f"    statement:   {ob.statement}")
        print(f"    assumptions: {'; '.join(ob.assumptions)}")
        print(f"    method:      {ob.method}")
        if args.verbose and ob.detail:
            print(f"    detail:      {ob.detail}")
        if ob.counterexample:
            print(f"    counterexample: {ob.counterexample}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(cert.to_json(indent=2, ensure_ascii=False))
    print(cert.summary())
    return 0 if cert.ok else 1


if __name__ == "__main__":
    sys.exit(main())
