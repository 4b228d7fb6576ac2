"""Shared fixtures: every test that touches MLflow gets its own sqlite store in a tmp dir."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("PYTHONWARNINGS", "ignore")


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch):
    """An empty sqlite MLflow store under tmp_path; the cwd moves there too."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri
