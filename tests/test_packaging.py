"""The wheel ships the package, the data folders and the console script."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_ships_data_folders_and_entry_point(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(tmp_path), str(REPO)], check=True, timeout=300)
    wheel = next(tmp_path.glob("imagen_audit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "imagen_audit/_data/probes/occupations.yaml" in names
    assert "imagen_audit/_data/probes/identities.yaml" in names
    assert any(n.startswith("imagen_audit/_data/filters/") for n in names)
    assert any(n.startswith("imagen_audit/_data/reports/") for n in names)
    assert "imagen_audit/cli.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "imagen-audit = imagen_audit.cli:main" in zipfile.ZipFile(wheel).read(
        entry_points).decode()


def test_data_dir_finds_shipped_probes() -> None:
    from imagen_audit.resources import data_dir

    assert (data_dir("probes") / "occupations.yaml").is_file()
