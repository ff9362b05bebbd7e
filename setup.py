"""The one compiled part: dora's zero-copy sample buffer (car/compat/dora/_sample_buffer.c).

Optional: where no C compiler is found the install goes on without it, and
car.compat.dora.sample says what that costs. Everything else is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "car.compat.dora._sample_buffer",
            sources=["car/compat/dora/_sample_buffer.c"],
            optional=True,
        )
    ]
)
