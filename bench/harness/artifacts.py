"""Deployment artifact sizes: the zip each function would be deployed as.

What is counted (the zip a user uploads, deflate level 9, .pyc left out):
  rust               the consumer binary, stored as `bootstrap` (provided.al2023)
  python-plain       handler.py only: boto3 ships in Lambda's Python runtime
  python-powertools  handler.py + aws_lambda_powertools + typing_extensions,
                     which Lambda's Python runtime does not ship (jmespath,
                     its other dependency, comes with the runtime's boto3)
For the record the harness also zips the Python peers with their own boto3,
botocore, s3transfer, jmespath, urllib3, python-dateutil and six, as a user
who pins boto3 (as AWS recommends for production) would deploy them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
from pathlib import Path

# The repository's one zip writer (fixed timestamps and modes, deflate 9).
_spec = importlib.util.spec_from_file_location(
    "lambda_zip", Path(__file__).resolve().parents[2] / "infra" / "lambda_zip.py"
)
lambda_zip = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lambda_zip)

RUNTIME_PROVIDED = ["boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six"]
POWERTOOLS_EXTRA = ["aws-lambda-powertools", "typing_extensions"]

_LIST_FILES = r"""
import json, sys
from importlib import metadata
out = {}
for name in sys.argv[1:]:
    dist = metadata.distribution(name)
    files = []
    for f in dist.files or []:
        path = dist.locate_file(f)
        files.append([str(f), str(path)])
    out[name] = files
print(json.dumps(out))
"""


def _zip(zip_path: Path, entries: list[tuple[str, Path]]) -> int:
    return lambda_zip.write_zip(
        zip_path,
        ((arcname, path.read_bytes(), 0o755 if arcname == "bootstrap" else 0o644) for arcname, path in sorted(entries)),
    )


def _dist_files(python: Path, names: list[str]) -> list[tuple[str, Path]]:
    out = subprocess.run(
        [str(python), "-c", _LIST_FILES, *names], capture_output=True, text=True, timeout=60, check=True
    )
    entries = []
    for files in json.loads(out.stdout).values():
        for rel, path in files:
            p = Path(path)
            # Only what lands in site-packages; no .pyc, no console scripts.
            if rel.startswith("..") or "__pycache__" in rel or rel.endswith(".pyc") or not p.is_file():
                continue
            entries.append((rel, p))
    return entries


def rust_artifact(binary: Path, work: Path) -> dict:
    size = _zip(work / "rust.zip", [("bootstrap", binary)])
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    return {
        "zip_bytes": size,
        "unzipped_bytes": binary.stat().st_size,
        "counted": "bootstrap (the consumer binary)",
        "sha256": digest,
    }


def python_artifacts(python: Path, bench_dir: Path, work: Path) -> dict[str, dict]:
    plain_handler = bench_dir / "python" / "plain" / "handler.py"
    pt_handler = bench_dir / "python" / "powertools" / "handler.py"
    provided = _dist_files(python, RUNTIME_PROVIDED)
    extra = _dist_files(python, POWERTOOLS_EXTRA)
    result = {}
    for name, handler, deps in (
        ("python-plain", plain_handler, []),
        ("python-powertools", pt_handler, extra),
    ):
        entries = [("handler.py", handler)] + deps
        size = _zip(work / f"{name}.zip", entries)
        with_boto = _zip(work / f"{name}-with-boto3.zip", entries + provided)
        result[name] = {
            "zip_bytes": size,
            "unzipped_bytes": sum(p.stat().st_size for _, p in entries),
            "zip_with_boto3_bytes": with_boto,
            "counted": "handler.py" + (" + aws_lambda_powertools + typing_extensions" if deps else ""),
        }
    return result
