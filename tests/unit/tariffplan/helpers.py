"""Shared paths and small builders for the tariff-plan tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.tariffplan import TariffPlanError, read_folder, validate

REPO = Path(__file__).resolve().parents[3]
VECTORS = REPO / "tests" / "vectors" / "tariffplans"
# CGRateS's tutorial tariff plan, kept outside the repository (read-only reference data).
TUTORIAL = Path(
    os.environ.get(
        "CHARGEFLOW_CGRATES_TUTORIAL", str(REPO.parent / "shared/tariffplans/cgrates_tutorial")
    )
)

needs_tutorial = pytest.mark.skipif(
    not TUTORIAL.is_dir(), reason=f"CGRateS tutorial tariff plan not found at {TUTORIAL}"
)


def write_plan(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def problems(folder: Path) -> list[str]:
    """What a load reports: the read errors, or else the reference issues."""
    try:
        plan = read_folder(folder)
    except TariffPlanError as exc:
        return str(exc).splitlines()
    return [str(issue) for issue in validate(plan)]
