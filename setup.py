"""Build of the one compiled part: the claims model's scoring kernel (detectors/_claims_kernel.pyx).

Everything else is declared in pyproject.toml. The extension is optional: where no C++ compiler is at hand
the install still succeeds and the detector scores with the equivalent pure-Python path (slower; docs/claims.md).
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension("detectors._claims_kernel", ["detectors/_claims_kernel.pyx"], language="c++", optional=True)],
        compiler_directives={"language_level": "3"},
    )
)
