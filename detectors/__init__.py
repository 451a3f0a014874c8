"""Pure detectors: functions of (event, normalised text, room state) → findings.

Importing this package registers every built-in detector in ``REGISTRY``.
"""

from detectors import claims  # noqa: F401  (registers the detector)
from detectors.base import REGISTRY, Detector, RuleContext, register

__all__ = ["REGISTRY", "Detector", "RuleContext", "register"]
