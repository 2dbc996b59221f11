"""The run's HTML page: self-contained, and prompts are shown as text, never as markup."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from imagen_audit.cli import main
from imagen_audit.generate.runner import generate_run

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _folder_run(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), np.uint8)).save(src / f"{i}.png")
    (src / "manifest.csv").write_text(
        f'file,prompt,seed\n0.png,"{EVIL.replace(chr(34), chr(34) * 2)}",1\n1.png,a baker,2\n')
    run = tmp_path / "run"
    generate_run(run, model=f"folder:{src}", probes=None, progress=False)
    return run


def test_report_escapes_prompts_and_embeds_everything(tmp_path: Path) -> None:
    run = _folder_run(tmp_path)
    assert main(["report", str(run)]) == 0
    html = (run / "report" / "index.html").read_text()
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "perceived attributes" in html
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert len(srcs) == 2 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="(https?:)?//', html)  # no network requests
