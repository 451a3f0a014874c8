"""Pure detectors: functions of (event, normalised text, room state) → findings.

Importing this package registers every built-in detector in ``REGISTRY``.
"""

from detectors import ai_label, claims, floods, prices  # noqa: F401  (importing registers them)
from detectors.base import REGISTRY, Detector, RuleContext, register

__all__ = ["REGISTRY", "Detector", "RuleContext", "register"]
