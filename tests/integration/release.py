"""Release wheels for the Ansible tests, built by the real `make dist` from a copy of the tree.

A copy, so a test can give it another version (schoolmon/__init__.py is the one place it is
written) without touching the checkout other work shares.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What `make dist` needs: the build config, the readme it embeds, and the packaged folders.
_TREE = ("Makefile", "pyproject.toml", "README.md", "common", "agent", "collector", "schoolmon",
         "configs/policies")


def build_wheels(versions: list[str], store: Path, work: Path) -> list[Path]:
    """One wheel per version in ``store``, the builds running side by side."""
    with ThreadPoolExecutor(len(versions)) as pool:
        return list(pool.map(lambda v: build_wheel(v, store, work), versions))


def build_wheel(version: str, store: Path, work: Path) -> Path:
    """schoolmon-<version>-py3-none-any.whl in ``store``, built from a copy of this checkout."""
    tree = work / f"tree-{version}"
    for name in _TREE:
        source, target = ROOT / name, tree / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    init = tree / "schoolmon" / "__init__.py"
    text, count = re.subn(r'(?m)^__version__ = ".*"$', f'__version__ = "{version}"',
                          init.read_text())
    assert count == 1, "schoolmon/__init__.py has no __version__ line"
    init.write_text(text)
    result = subprocess.run(["make", "--no-print-directory", "-C", str(tree), "dist",
                             f"PYTHON={sys.executable}", f"DIST={store}"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    wheel = store / f"schoolmon-{version}-py3-none-any.whl"
    assert f"{wheel}\n" in result.stdout and wheel.is_file(), result.stdout
    return wheel
