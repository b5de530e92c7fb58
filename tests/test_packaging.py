"""The package as pip installs it: a wheel with its trained weights, run from outside the checkout."""

import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _readme_snippet():
    """The README's first library snippet (the ```python block after 'Library in a few lines')."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Library in a few lines"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory):
    """A wheel built from the checkout, installed into a fresh venv that borrows this venv's
    dependencies (a path entry, so its editable tfcf is not seen)."""
    base = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-q", "-w", str(base / "dist"), str(ROOT)],
                           cwd=base, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next((base / "dist").glob("tfcf-*.whl"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True).stdout
    site = Path(site.strip())
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                              "--target", str(site), str(wheel)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    return python, site, wheel


def _run(python, code, cwd, *args, timeout=600):
    environment = {**os.environ, "PYTHONPATH": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([str(python), "-c", code, *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=timeout)


def test_the_wheel_ships_only_tfcf_with_its_weights(installed_wheel):
    import zipfile

    python, site, wheel = installed_wheel
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.startswith("tfcf-")}
    assert tops == {"tfcf"}
    cards = [n for n in names if n.startswith("tfcf/models/weights/") and
             n.endswith("MODEL_CARD.json")]
    committed = sorted(p.parent.name for p in (ROOT / "models" / "weights").glob("*/MODEL_CARD.json"))
    assert sorted(n.split("/")[3] for n in cards) == committed


def test_the_installed_wheel_runs_a_figure_and_the_readme_snippet_from_elsewhere(installed_wheel,
                                                                             tmp_path):
    python, site, wheel = installed_wheel
    where = _run(python, "import tfcf, tfcf.models.registry as r; print(tfcf.__file__); "
                 "print(r.weights_root())", tmp_path)
    assert where.returncode == 0, where.stderr[-3000:]
    assert all(line.startswith(str(site)) for line in where.stdout.split())
    figure = _run(python, "from tfcf.experiments.cli import main; main()", tmp_path,
                  "fig3b", "--samples", "8", "--pairs", "8", "--show", "4",
                  "--outdir", "fig3b")
    assert figure.returncode == 0, figure.stderr[-3000:]
    results = json.loads((tmp_path / "fig3b" / "results.json").read_text())
    assert results["run"]["parameters"]["model"] == "vae_paper_celeba_mse"
    snippet = _run(python, _readme_snippet() + "\nprint(hybrids.shape)", tmp_path)
    assert snippet.returncode == 0, snippet.stderr[-3000:]
    assert "(8, 64, 64, 3)" in snippet.stdout


def test_absent_weights_say_where_they_are_looked_for(tmp_path, monkeypatch):
    from tfcf.models import registry

    monkeypatch.setenv("TFCF_WEIGHTS_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match=r"none were found in .*nowhere.*TFCF_WEIGHTS_DIR.*"
                                         r"models/weights"):
        registry.load_generator("vae_paper_celeba_faces")
