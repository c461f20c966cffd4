"""Silent Customizer: a self-hosted contextual-bandit experimentation service."""
from setuptools import find_packages, setup

setup(
    name="silent-customizer",
    version="0.1.0",
    description="Self-hosted contextual-bandit experimentation service for ecommerce personalization",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["bandit", "bandit.*", "experiments", "experiments.*", "web", "web.*",
                                    "silent_client"]),
    include_package_data=True,
    package_data={"web": ["static/*"], "web.dashboard": ["templates/*.html"]},
    install_requires=[
        "vowpalwabbit>=9.9",
        "flask>=3.0",
        "sqlite-utils>=3.36",
        "numpy>=1.24",
        "click>=8.1",
        "gunicorn>=22",
        "tqdm>=4.66",
        "orjson>=3.9",
        "prometheus-client>=0.20",
        "pyarrow>=15",
        "duckdb>=1.1",
        "psycopg[binary]>=3.1",  # the PostgreSQL engine (--db postgresql://...)
        "psycopg-pool>=3.2",
    ],
    extras_require={"test": ["pytest>=8", "requests>=2.31", "playwright>=1.40",
                             "azure-ai-personalizer>=1.0.0b1",  # the official client, for the compatibility tests
                             "schemathesis>=4,<5", "openapi-spec-validator>=0.7"]},  # fuzzing from /openapi.json
    entry_points={"console_scripts": ["silent=web.cli:cli"]},
)
