"""Deployment artifact sizes: the zip each function would be deployed as.

What is counted (the zip a user uploads, deflate level 9, .pyc left out):
  rust                          the consumer binary, stored as `bootstrap` (provided.al2023)
  python-plain                  handler.py + contract.py: boto3 ships in Lambda's Python runtime
  python-powertools-sequential  the same + aws_lambda_powertools + typing_extensions, which
                                Lambda's Python runtime does not ship (jmespath, its other
                                dependency, comes with the runtime's boto3)
  python-powertools-async       the same + aiobotocore and what it needs beyond the runtime:
                                aiohttp and its dependencies, and botocore itself (aiobotocore
                                pins a narrow botocore range, so the runtime's cannot be relied on)
For the record the harness also zips the Python peers with their own boto3,
botocore, s3transfer, jmespath, urllib3, python-dateutil and six, as a user
who pins boto3 (as AWS recommends for production) would deploy them.
These zips are only measured, never deployed: zipfile writes them.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile
from pathlib import Path

from .functions import PYTHON_PEERS, PYTHON_SHARED

RUNTIME_PROVIDED = ["boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six"]
POWERTOOLS = ["aws-lambda-powertools", "typing_extensions"]
AIOBOTOCORE = ["aiobotocore", "botocore", "aiohttp", "aiohappyeyeballs", "aiosignal", "aioitertools", "attrs",
               "frozenlist", "idna", "multidict", "propcache", "wrapt", "yarl"]
# What each Python peer ships beyond its handler and contract.py, and how the report names it.
EXTRA = {"python-plain": ([], ""),
         "python-powertools-sequential": (POWERTOOLS, " + aws_lambda_powertools + typing_extensions"),
         "python-powertools-async": (POWERTOOLS + AIOBOTOCORE, " + Powertools + aiobotocore, botocore, aiohttp "
                                     "and their dependencies")}

_LIST_FILES = r"""
import json, sys
from importlib import metadata
out = {}
for name in sys.argv[1:]:
    dist = metadata.distribution(name)
    out[name] = [[str(f), str(dist.locate_file(f))] for f in dist.files or []]
print(json.dumps(out))
"""


def _zip(zip_path: Path, entries: list[tuple[str, Path]]) -> int:
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for arcname, path in sorted(set(entries)):
            z.write(path, arcname)
    return zip_path.stat().st_size


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
    provided = _dist_files(python, RUNTIME_PROVIDED)
    result = {}
    for name, folder, _ in PYTHON_PEERS:
        extra, label = EXTRA[name]
        entries = [("handler.py", bench_dir / "python" / folder / "handler.py"),
                   ("contract.py", PYTHON_SHARED / "contract.py")] + _dist_files(python, extra)
        size = _zip(work / f"{name}.zip", entries)
        with_boto = _zip(work / f"{name}-with-boto3.zip", entries + provided)
        result[name] = {
            "zip_bytes": size,
            "unzipped_bytes": sum(p.stat().st_size for _, p in set(entries)),
            "zip_with_boto3_bytes": with_boto,
            "counted": "handler.py + contract.py" + label,
        }
    return result
