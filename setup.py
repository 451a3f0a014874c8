"""Build of the compiled parts: the claims model's scoring kernel (detectors/_claims_kernel.pyx), the flood
detector's comment bookkeeping (detectors/_comment_window.pyx) and the text normaliser (detectors/_normalize.pyx).

Everything else is declared in pyproject.toml. The extensions are optional: where no C++ compiler is at hand the
install still succeeds and the detectors run the equivalent pure-Python paths (slower; docs/claims.md,
docs/floods.md).
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [
            Extension("detectors._claims_kernel", ["detectors/_claims_kernel.pyx"], language="c++", optional=True),
            Extension("detectors._comment_window", ["detectors/_comment_window.pyx"], language="c++", optional=True),
            Extension("detectors._normalize", ["detectors/_normalize.pyx"], language="c++", optional=True),
        ],
        compiler_directives={"language_level": "3"},
    )
)
