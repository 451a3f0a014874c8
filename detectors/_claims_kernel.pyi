"""Types of the compiled scoring kernel (detectors/_claims_kernel.pyx)."""

from collections.abc import Callable, Iterable

import numpy as np

def gram_key(gram: str) -> int: ...
def pair_key(first: int, second: int) -> int: ...

class Syllables:
    def __init__(self, ids: dict[str, int], syllable_of: Callable[[str], str]) -> None: ...

class HeadKernel:
    def __init__(
        self,
        keyed_rows: dict[int, int],
        gathered: np.ndarray,
        intercept: np.ndarray,
        syllables: Syllables,
        max_n: int,
        words: dict[str, tuple[int, ...]] | None = None,
        length_rows: Iterable[int | None] = (),
        length_bucket: int = 1,
    ) -> None: ...
    def proba(self, text: str, extra_rows: Iterable[int] = ()) -> list[float]: ...
    def located(self, text: str) -> list[tuple[int, int, int]]: ...

class GapKernel:
    def __init__(
        self, spans: list[tuple[int, int]], weights: list[dict[int, float]], intercept: float, pad: int
    ) -> None: ...
    def logits(self, text: str) -> list[float]: ...
