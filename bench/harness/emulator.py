"""The local AWS emulator (ministack) and the resources each run creates in it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


EMULATOR_SH = Path(__file__).resolve().parents[2] / "infra" / "local" / "emulator.sh"


class Emulator:
    """ministack bound to 127.0.0.1:<port>, started and stopped by the harness.

    Through infra/local/emulator.sh, the repository's one launcher, with the
    bench's own port, pid file, log, services (S3 and DynamoDB) and Python;
    an emulator already answering on the port is an error, not reused.
    """

    def __init__(self, port: int, log_path: Path, python: str = sys.executable, cpus: set[int] | None = None):
        self.port = port
        self.log_path = log_path
        self.pid_path = log_path.with_suffix(".pid")
        self.python = python
        self.cpus = cpus
        self.pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/_ministack/health", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def _run(self, command: str, timeout_s: float) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            "MINISTACK_PORT": str(self.port),
            "EMULATOR_PID_FILE": str(self.pid_path),
            "EMULATOR_LOG": str(self.log_path),
            "EMULATOR_PYTHON": self.python,
            "EMULATOR_SERVICES": "s3,dynamodb",
            "EMULATOR_REUSE": "0",
            "EMULATOR_START_TIMEOUT": str(int(timeout_s)),
            "MINISTACK_LOG_LEVEL": "WARNING",
        }
        return subprocess.run(["bash", str(EMULATOR_SH), command], env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout_s + 30)

    def start(self, timeout_s: float = 30.0) -> None:
        if self.healthy():
            raise RuntimeError(
                f"something already answers on 127.0.0.1:{self.port}; pick another port with --emulator-port"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        done = self._run("start", timeout_s)
        if done.returncode != 0:
            self.stop()
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            raise RuntimeError(f"ministack did not start ({tail}); see {self.log_path}")
        self.pid = int(self.pid_path.read_text().strip())
        if self.cpus:
            try:
                os.sched_setaffinity(self.pid, self.cpus)
            except OSError:
                pass

    def stop(self) -> None:
        if self.pid is None and not self.pid_path.exists():
            return
        self._run("stop", 20)
        self.pid = None


def clients(endpoint: str):
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )
    config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"})
    return (
        session.client("s3", endpoint_url=endpoint, config=config),
        session.client("dynamodb", endpoint_url=endpoint, config=config),
    )


def create_resources(endpoint: str, bucket: str, table: str) -> None:
    s3, ddb = clients(endpoint)
    s3.create_bucket(Bucket=bucket)
    ddb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    # Bounded wait for ACTIVE (the emulator is immediate; AWS is not).
    for _ in range(100):
        status = ddb.describe_table(TableName=table)["Table"]["TableStatus"]
        if status == "ACTIVE":
            return
        time.sleep(0.1)
    raise RuntimeError(f"table {table} did not become ACTIVE")


def delete_resources(endpoint: str, bucket: str, table: str) -> None:
    """Best effort: the emulator keeps everything in memory and is stopped anyway."""
    s3, ddb = clients(endpoint)
    try:
        ddb.delete_table(TableName=table)
    except Exception:  # noqa: BLE001
        pass
    try:
        for _ in range(10_000):
            page = s3.list_objects_v2(Bucket=bucket, MaxKeys=1000)
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if not keys:
                break
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        s3.delete_bucket(Bucket=bucket)
    except Exception:  # noqa: BLE001
        pass


def read_records(endpoint: str, bucket: str, table: str, keys: list[str], ids: list[str]):
    """The S3 objects (key -> (content type, raw bytes) or None) and items (id -> item or None)."""
    s3, ddb = clients(endpoint)
    objects = {}
    for key in keys:
        try:
            got = s3.get_object(Bucket=bucket, Key=key)
            objects[key] = (got.get("ContentType"), got["Body"].read())
        except s3.exceptions.NoSuchKey:
            objects[key] = None
        except Exception as error:  # noqa: BLE001
            if "NoSuchKey" in str(error) or "404" in str(error):
                objects[key] = None
            else:
                raise
    items: dict[str, dict | None] = {i: None for i in ids}
    for start in range(0, len(ids), 100):
        request = {table: {"Keys": [{"id": {"S": i}} for i in ids[start : start + 100]], "ConsistentRead": True}}
        for _ in range(10):
            response = ddb.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(table, []):
                items[item["id"]["S"]] = item
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
    return objects, items

