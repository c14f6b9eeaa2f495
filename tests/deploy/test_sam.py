"""The SAM CLI, offline: `sam validate --lint` and `sam build` of template.yaml.

Needs the sam CLI (aws-sam-cli 1.170.0 in its own venv, see the README's "Deploy to AWS" section): $LABELLOOP_SAM,
`sam` on PATH, or ~/.cache/labelloop/sam-venv/bin/sam. Skipped, with that reason, only when
there is none.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from template_model import REGION, REPO, sam_binary

SAM = sam_binary()
pytestmark = pytest.mark.skipif(
    SAM is None,
    reason="sam CLI not found (install: python3 -m venv ~/.cache/labelloop/sam-venv && "
    "~/.cache/labelloop/sam-venv/bin/pip install aws-sam-cli==1.170.0)",
)
LAMBDA_LIMIT = 250 * 1024 * 1024  # unzipped function code plus layers


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        SAM_CLI_TELEMETRY="0",
        SAM_CLI_CONTACT_TRACKING="0",
        PYTHON=sys.executable,  # the Makefile's pip: any Python with pip builds the layer for the Lambda runtime
    )
    return env


def _sam(*args: str, cwd: Path = REPO, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([SAM, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def test_sam_validate_lint():
    done = _sam("validate", "--lint", "--template", "template.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is a valid SAM Template" in done.stdout + done.stderr


def test_sam_validate_lint_is_live(tmp_path):
    """The same command fails the template with one wrong value (the alarm's statistic)."""
    shutil.copy(REPO / "template.yaml", tmp_path / "template.yaml")
    text = (tmp_path / "template.yaml").read_text()
    assert "      Statistic: Sum\n" in text
    (tmp_path / "template.yaml").write_text(text.replace("      Statistic: Sum\n", "      Statistic: Summ\n", 1))
    done = _sam("validate", "--lint", "--template", str(tmp_path / "template.yaml"), cwd=tmp_path)
    assert done.returncode != 0 and "'Summ' is not one of" in done.stdout + done.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    build = tmp_path_factory.mktemp("sam-build")
    done = _sam("build", "--template", "template.yaml", "--build-dir", str(build), "--parallel", timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return build


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def test_sam_build_packages_the_handlers_and_the_pure_modules(built):
    local_only = re.search(r"^LOCAL_ONLY := (.+)$", (REPO / "Makefile").read_text(), re.M).group(1).split()
    expected_handlers = {p.name for p in (REPO / "functions").glob("*.py")}
    expected_modules = {p.name for p in (REPO / "labelloop").glob("*.py") if f"labelloop/{p.name}" not in local_only}
    assert {"cli.py", "aws_cli.py", "deploy.py", "metrics_table.py"} == {Path(p).name for p in local_only}
    packages = set(re.search(r"^STEP_PACKAGES := (.+)$", (REPO / "Makefile").read_text(), re.M).group(1).split())
    functions = sorted(p for p in built.iterdir() if p.name.endswith("Function"))
    assert len(functions) == 7
    for artifact in functions:
        assert {p.name for p in artifact.glob("*.py")} == expected_handlers, artifact.name
        assert {p.name for p in (artifact / "labelloop").iterdir()} == expected_modules | packages, artifact.name
        assert not any((artifact / "labelloop" / sub).exists() for sub in ("local", "datasets", "report"))
        for name in expected_handlers | expected_modules:  # the same package for every step
            base = artifact if name in expected_handlers else artifact / "labelloop"
            source = REPO / ("functions" if name in expected_handlers else "labelloop") / name
            assert (base / name).read_bytes() == source.read_bytes()


def test_sam_build_layer_has_the_pinned_wheels_for_the_lambda_runtime(built):
    site = built / "DependenciesLayer" / "python"
    for line in (REPO / "functions" / "requirements.txt").read_text().split():
        name, version = line.split("==")
        dist = name.replace("-", "_")
        assert list(site.glob(f"{dist}-{version}.dist-info")), f"{line} not in the layer"
    assert list((site / "numpy" / "_core").glob("_multiarray_umath.cpython-312-x86_64-linux-gnu.so"))
    assert list((site / "scipy" / "special").glob("*.cpython-312-x86_64-linux-gnu.so"))
    biggest = max(_size(p) for p in built.iterdir() if p.name.endswith("Function"))
    assert biggest + _size(built / "DependenciesLayer") < LAMBDA_LIMIT


def test_the_built_handlers_import_from_their_package_alone(built, tmp_path):
    """Each handler imports with only its artifact (+ third-party packages) on the path: nothing
    it needs was left out of the package. Third-party packages come from this venv (the layer's
    are built for Python 3.12)."""
    artifact = built / "BootstrapFunction"
    code = (
        "import importlib, pathlib, sys\n"
        "import labelloop\n"
        f"assert pathlib.Path(labelloop.__file__).is_relative_to({str(artifact)!r}), labelloop.__file__\n"
        f"for m in {sorted(p.stem for p in artifact.glob('*.py'))!r}:\n"
        "    assert callable(getattr(importlib.import_module(m), 'lambda_handler', None)) or m == 'observability', m\n"
        "print('ok')\n"
    )
    env = {**_env(), "PYTHONPATH": str(artifact), "POWERTOOLS_METRICS_NAMESPACE": "labelloop"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_sam_parses_prepare_deploy_overrides():
    """`sam deploy --parameter-overrides "$(labelloop prepare-deploy ...)"`: SAM's own parser reads our output."""
    from labelloop.deploy import parameter_overrides, resolve_images

    params = {
        **resolve_images(REGION),
        "DataBucketName": "my-labels",
        "ImageClassificationSourceDirUri": "",  # an empty value, as a guided deploy saves it
        "TextClassificationSourceDirUri": "s3://my-labels/labelloop/source/text-classification/0a1b/sourcedir.tar.gz",
    }
    python = Path(SAM).with_name("python")
    if not python.exists():
        pytest.skip("sam is not installed in a venv next to its python")
    code = (
        "import json, sys\n"
        "from samcli.cli.types import CfnParameterOverridesType\n"
        "print(json.dumps(CfnParameterOverridesType().convert(sys.argv[1], None, None)))\n"
    )
    done = subprocess.run(
        [str(python), "-c", code, parameter_overrides(params)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    import json

    assert json.loads(done.stdout) == params
