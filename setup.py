"""Build of the compiled parts, every ``detectors/*.pyx``: the claims model's scoring kernel (_claims_kernel), the
flood detector's comment bookkeeping (_comment_window) and the text normaliser (_normalize).

Everything else is declared in pyproject.toml. The extensions are optional: where no C++ compiler is at hand the
install still succeeds and the detectors run the equivalent pure-Python paths (slower; docs/claims.md,
docs/floods.md).
"""

from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [
            Extension(f"detectors.{source.stem}", [f"detectors/{source.name}"], language="c++", optional=True)
            for source in sorted(Path(__file__).parent.glob("detectors/*.pyx"))
        ],
        compiler_directives={"language_level": "3"},
    )
)
