"""recbole-dreamrec: DreamRec (NeurIPS 2023) as a RecBole plugin.

The top-level ``properties/`` folder (model, plugin and tuning YAML files) is installed as the package data folder
``recbole_dreamrec/properties`` through ``package_dir``, so a wheel finds its YAML files without the source tree.
"""

from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as f:
    long_description = f.read()

setup(
    name="recbole-dreamrec",
    version="0.1.0",
    description="DreamRec (Yang et al., NeurIPS 2023): sequential recommendation by guided diffusion, as a RecBole plugin",
    long_description=long_description,
    long_description_content_type="text/markdown",
    packages=find_packages(include=["recbole_dreamrec", "recbole_dreamrec.*"]) + ["recbole_dreamrec.properties"],
    package_dir={"recbole_dreamrec.properties": "properties"},
    package_data={"recbole_dreamrec.properties": ["*.yaml", "*/*.yaml", "*/*/*.yaml", "*/*.hyper"]},
    py_modules=[],
    # RecBole 1.2.1 requires ray <= 2.6.3, which has no wheels for Python >= 3.12 (recbole_dreamrec.compat)
    python_requires=">=3.9,<3.12",
    install_requires=[
        "torch>=2.0",
        "recbole==1.2.1",
        "numpy>=1.21",
        "scipy>=1.6",
        "pyyaml>=5.1",
        # version bounds that keep RecBole 1.2.1 working (see recbole_dreamrec/compat.py)
        "pandas>=1.3,<3",  # pandas 3 copy-on-write and Series.agg(len) break RecBole's data loading
        "setuptools<82",  # ray 2.6.3, imported by recbole.quick_start, needs pkg_resources
    ],
    extras_require={
        "test": ["pytest>=7", "hyperopt==0.2.5", "matplotlib>=3.5"],
        "bench": ["matplotlib>=3.5"],  # the charts of benchmarks/*.py and inspect_dreamrec.py map
        "tune": ["hyperopt==0.2.5"],  # RecBole's exhaustive search breaks on hyperopt 0.3
    },
    entry_points={"console_scripts": ["recbole-dreamrec=recbole_dreamrec.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.9",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
