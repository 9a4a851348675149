"""Proof script: BatchNormChannelFirst for every shape -- symbolic C, H, W (N = H·W).

Proves, by index-level calculus with explicit rewrite rules (``symbolic_bn/obligations/allsizes/``), the
per-channel identities for a symbolic spatial size N and the channel independence for a symbolic
channel count C: the node VJP = Jᵀδ and JVP = J·t laws, the index-level derivatives, output-only backprop and
Jᵀg = the closed form of ``Spec.batchNorm2dBackward``, the closed-form JVP, the dot-product
identity, and ∂out[c,·]/∂in[c',·] = δ_cc'·(...) for every node and for the whole graph.  Every
parametric result is also confirmed at N = 1..6 by a concrete expansion.

Prints each obligation (name, status, assumptions, method, seconds) and a one-line summary.
Usage:  python proofs/batchnorm_all_sizes.py [--budget SECONDS] [--sizes 1,2,...] [--only NAME ...]
        [--json]
Exit status 0 only when every obligation is proved.
"""
from __future__ import annotations

import argparse
import sys

from symbolic_bn.obligations import allsizes


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes must be a comma-separated list of ints, "
                                         f"got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--sizes must list ints ≥ 1, got {text!r}")
    return sizes


def _budget(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--budget must be a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--budget must be positive, got {text!r}")
    return value


def format_obligation(ob) -> str:
    lines = [f"[{ob.status.upper():9}] {ob.name}  ({ob.seconds:.2f} s)",
             f"    statement:   {ob.statement}"]
    if ob.assumptions:
        lines.append("    assumptions: " + "; ".join(ob.assumptions))
    lines.append(f"    method:      {ob.method}")
    if ob.counterexample:
        lines.append(f"    counterexample: {ob.counterexample}")
    if ob.status != "proved" and ob.detail:
        lines.append(f"    detail:      {ob.detail}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=_budget, default=60.0,
                    help="seconds per obligation (default 60)")
    ap.add_argument("--sizes", type=_sizes, default=list(range(1, 7)),
                    help="concrete N for the confirmation (default 1,2,3,4,5,6)")
    ap.add_argument("--only", nargs="+", default=None, metavar="NAME",
                    help="run only these obligations")
    ap.add_argument("--json", action="store_true", help="print the certificate as JSON")
    args = ap.parse_args(argv)
    try:
        cert = allsizes.prove_all_sizes(budget=args.budget, sizes=args.sizes, only=args.only)
    except ValueError as exc:
        print(f"batchnorm_all_sizes.py: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(cert.to_json(indent=2))
    else:
        group = None
        for ob in cert:
            if ob.group != group:
                group = ob.group
                print(f"\n== {group} ==")
            print(format_obligation(ob))
        print()
        print(cert.summary())
    return 0 if cert.ok else 1


if __name__ == "__main__":
    sys.exit(main())
