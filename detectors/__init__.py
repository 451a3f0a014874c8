"""Pure detectors: functions of (event, normalised text, room state) → findings.

Importing this package imports every module in it, and so registers every detector class in ``REGISTRY``:
adding a detector is adding its module (and its rules file and tests), nothing else.
"""

import importlib
import pkgutil

from detectors.base import REGISTRY, AnyDetector, Detector, RuleContext, register

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["REGISTRY", "AnyDetector", "Detector", "RuleContext", "register"]
