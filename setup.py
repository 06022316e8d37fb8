"""envdoctor: a CUDA environment doctor and repair tool for deep-learning projects.

The MSDeformAttn extension in csrc/ is NOT built at install time: it is built on
demand by ``envdoctor build`` into a cache keyed by the environment.
"""
import os
import re

import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version():
    with open(os.path.join(HERE, "envdoctor", "__init__.py"), encoding="utf-8") as fh:
        return re.search(r'^__version__ = "([^"]+)"', fh.read(), re.M).group(1)


def read_readme():
    with open(os.path.join(HERE, "README.md"), encoding="utf-8") as fh:
        return fh.read()


class build_py_with_csrc(build_py):
    """Carry the op's C++/CUDA sources (csrc/) in the wheel as envdoctor/_csrc, so that
    `envdoctor build` works from an installed wheel, not only from a checkout."""

    def run(self):
        super().run()
        source = os.path.join(HERE, "csrc")
        if os.path.isdir(source) and not getattr(self, "editable_mode", False):
            target = os.path.join(self.build_lib, "envdoctor", "_csrc")
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target)


TEST_REQUIRES = [
    "pytest>=7",
    "hypothesis>=6",
    "scipy>=1.9",
    "pyyaml>=5.4",  # tests of action.yml
    "torch==2.14.1",
    "torchvision==0.29.1",
]

setup(
    name="envdoctor",
    version=read_version(),
    description="A CUDA environment doctor and repair tool for deep-learning projects",
    long_description=read_readme(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["envdoctor", "envdoctor.*"]),
    include_package_data=True,
    package_data={
        "envdoctor": ["knowledge/data/*.json", "py.typed"],
    },
    install_requires=["click>=8.0", "packaging>=21", "psutil>=5.8", "ninja>=1.10",
                      'tomli>=1.1; python_version < "3.11"'],
    extras_require={
        "test": TEST_REQUIRES,
        "smoke": ["scipy>=1.9"],
    },
    cmdclass={"build_py": build_py_with_csrc},
    entry_points={"console_scripts": ["envdoctor=envdoctor.__main__:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
        "Environment :: Console",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
