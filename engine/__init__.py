"""releasegate: a policy-as-code release gate and decision engine."""

__version__ = "0.1.0"

__all__ = ["__version__"]
