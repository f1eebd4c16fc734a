"""The layers the design promises: api/ never imports torch, ml/ never imports the database."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "pawdex"


def imported_modules(package: str) -> set[str]:
    names: set[str] = set()
    for path in (PACKAGE / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
    return names


def test_ml_never_imports_the_database_or_the_service():
    forbidden = ("sqlalchemy", "alembic", "celery", "psycopg")
    service = ("pawdex.core", "pawdex.api", "pawdex.worker", "pawdex.cli")
    bad = {
        m for m in imported_modules("ml") if m.split(".")[0] in forbidden or m.startswith(service)
    }
    assert not bad


def test_the_api_never_imports_the_models_package():
    assert not {m for m in imported_modules("api") if m.startswith("pawdex.ml")}


def test_the_api_process_never_loads_torch(tmp_path):
    code = (
        "import sys; from pawdex.api.main import create_app; create_app();"
        "print(sorted(m for m in ('torch', 'timm', 'onnxruntime') if m in sys.modules))"
    )
    env = {"PAWDEX_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
