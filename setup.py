"""Installs keras_attdef: `pip install -e .` (runtime) or `pip install -e ".[dev]"` (tests)."""
from pathlib import Path

from setuptools import find_packages, setup

README = Path(__file__).with_name("README.md")

setup(
    name="keras_attdef",
    version="0.1.0",
    description=(
        "Adversarial defences for Keras 3 / TensorFlow 2 image classifiers: attention-based "
        "adversarial training (AAD, ATAT, AT+ALP), PGD-AT/ALP/TRADES baselines, attacks and "
        "certificates."
    ),
    long_description=README.read_text(encoding="utf-8") if README.exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    license_files=["LICENSE"],
    packages=find_packages(include=["keras_attdef", "keras_attdef.*"]),
    package_data={"keras_attdef": ["_data/*.npz", "_data/*.md"]},
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.0",
        "tensorflow-datasets>=4.9",
        # tensorflow-datasets imports importlib_resources without declaring it;
        # tf-keras-vis imports importlib_metadata without declaring it.
        "importlib_resources",
        "importlib_metadata",
        "tf-keras-vis>=0.8",
        "cvxpy>=1.4",
        "scs>=3.2",
        "numpy>=1.24",
        "scipy>=1.10",
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "threadpoolctl>=3.0",  # one BLAS thread per certificate worker (small matrices: threads only contend)
    ],
    extras_require={
        # independent implementations the attacks are checked against: IBM's Adversarial Robustness Toolbox,
        # and torchattacks (ports of the AutoAttack authors' APGD-T, FAB and Square; PyTorch, a large install)
        "crosscheck": ["adversarial-robustness-toolbox>=1.17", "torch>=2.0", "torchattacks>=3.5"],
        "dev": ["pytest>=7", "hypothesis>=6", "pytest-xdist>=3", "adversarial-robustness-toolbox>=1.17"],
    },
    entry_points={"console_scripts": ["keras-attdef=keras_attdef.cli:main"]},
)
