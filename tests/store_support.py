"""Test support: a fresh, real MLflow sqlite store in a fraction of a second.

Creating an MLflow sqlite database runs every schema migration (over ten seconds on a busy 2-core
machine). The first call per test session creates one real store; each test gets a copy of it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from mlflow.tracking import MlflowClient

_TEMPLATE: list[Path] = []


def fresh_store(folder: Path) -> str:
    """Put an empty, migrated MLflow sqlite store at ``folder/mlflow.db``; return its URI."""
    if not _TEMPLATE:
        template = Path(tempfile.mkdtemp(prefix="metarl-store-")) / "mlflow.db"
        MlflowClient(f"sqlite:///{template}").search_experiments()
        _TEMPLATE.append(template)
    shutil.copy(_TEMPLATE[0], folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"
