"""Proof script: TorchLean's BatchNormChannelFirst graph, obligation by obligation.

Mirrors ``NN/Proofs/Autograd/Tape/Ops/Norm/BatchNormChannelFirst.lean`` (wadkisson/TorchLean
c2be276): the 16 stage certificates (each node's adjointness law, derivative and transpose), the
end-to-end theorem ``backprop_eq_adjoint_fderiv_batchNorm_channel_first_at`` under
``var_c + ε > 0`` (and the implied ``std_c ≠ 0``), then what the Lean repository does not prove:
the link to the closed-form spec backward, JVP and forward (reference ``torchlean.md`` §5.4), and
the domain facts.  Every 'proved' is exact algebra (see ``symbolic_bn/decide.py``).

Usage:  python proofs/batchnorm_channel_first.py [--shape CxHxW] [--eps E|symbolic]
Exit status 0 only when every obligation is proved.
"""
import argparse
import sys

from symbolic_bn import batchnorm_channel_first, prove
from symbolic_bn.cli import UsageError, parse_eps, parse_shape
from symbolic_bn.report.text import certificate_text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="2x2x2", help="CxHxW (default 2x2x2)")
    ap.add_argument("--eps", default="symbolic", help="'symbolic' (default) or an exact number such as 1e-6")
    args = ap.parse_args(argv)
    try:
        shape, eps = parse_shape(args.shape), parse_eps(args.eps)
    except UsageError as exc:
        print(f"batchnorm_channel_first.py: error: {exc}", file=sys.stderr)
        return 2
    cert = prove(batchnorm_channel_first(*shape, eps=eps))
    print(certificate_text(cert))
    return 0 if cert.ok else 1


if __name__ == "__main__":
    sys.exit(main())
