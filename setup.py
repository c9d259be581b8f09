"""tss_keras: Transferable Semi-supervised Semantic Segmentation (TS3) in Keras 3."""

from setuptools import find_packages, setup

setup(
    name="tss_keras",
    version="0.2.0",
    description="Transferable semi-supervised semantic segmentation (TS3, AAAI 2018) in Keras 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tss_keras", "tss_keras.*", "trainers", "export"]),
    package_data={"trainers": ["*.flags"]},
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.10,<4",
        "numpy",
        "pillow",
        "absl-py",
        "tensorboard",
        "ai-edge-litert",
    ],
    extras_require={
        # the domain suite's real photographs are scikit-image's sample images
        "domains": ["scikit-image"],
        "test": ["pytest", "pytest-xdist", "scikit-image", "tensorflow-serving-api>=2.21,<2.22"],
    },
)
