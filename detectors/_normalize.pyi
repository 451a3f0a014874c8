"""Types of the compiled normaliser (detectors/_normalize.pyx); its reference: normalize._normalize."""

from collections.abc import Callable
from typing import Any

class Normalizer:
    def __init__(self, fold: Callable[[str], str], convert: Callable[[str], str], make: type[Any]) -> None: ...
    def normalize(self, raw: str) -> Any: ...
