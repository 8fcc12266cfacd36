"""The local AWS emulator (ministack) and the resources each run creates in it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


class Emulator:
    """ministack bound to 127.0.0.1:<port>, started and stopped by the harness."""

    def __init__(self, port: int, log_path: Path, python: str = sys.executable, cpus: set[int] | None = None):
        self.port = port
        self.log_path = log_path
        self.python = python
        self.cpus = cpus
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/_ministack/health", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def start(self, timeout_s: float = 30.0) -> None:
        if self.healthy():
            raise RuntimeError(
                f"something already answers on 127.0.0.1:{self.port}; pick another port with --emulator-port"
            )
        env = {
            **os.environ,
            "GATEWAY_PORT": str(self.port),
            "BIND_HOST": "127.0.0.1",
            "SERVICES": "s3,dynamodb",
            "LOG_LEVEL": "WARNING",
            # Keep S3 data in memory; nothing of a run survives it.
            "S3_PERSIST": "0",
            "PERSIST_STATE": "0",
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [self.python, "-m", "ministack"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        if self.cpus:
            try:
                os.sched_setaffinity(self.proc.pid, self.cpus)
            except OSError:
                pass
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ministack exited with {self.proc.returncode}; see {self.log_path}")
            if self.healthy():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"ministack did not become healthy in {timeout_s:.0f}s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


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

