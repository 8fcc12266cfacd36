#!/usr/bin/env python3
"""Refuse parameter values AWS would refuse or advise against, before a
deploy: what CloudFormation's Rules cannot express (arithmetic across
parameters). infra/deploy-aws.sh and infra/local/deploy.sh run it.

    python3 infra/check_parameters.py [--template infra/template.yaml] Key=Value ...

Values not given are the template's defaults. Exit 0: fine; 1: refused, with
one line per problem naming the parameters. Standard library only.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def defaults(template: str) -> dict[str, str]:
    """Parameter defaults, read from the Parameters section's layout
    (`  Name:` then `    Default: value`), without a YAML library."""
    out, name, in_params = {}, None, False
    for line in template.splitlines():
        if re.match(r"^\S", line):
            in_params = line.startswith("Parameters:")
            continue
        if not in_params:
            continue
        m = re.match(r"^  ([A-Za-z0-9]+):\s*$", line)
        if m:
            name = m.group(1)
            continue
        m = re.match(r"^    Default:\s*(.*?)\s*$", line)
        if m and name:
            out[name] = m.group(1).strip("\"'")
    return out


def problems(v: dict[str, str]) -> list[str]:
    out = []

    def num(k):
        try:
            return int(v[k])
        except (KeyError, ValueError):
            out.append(f"{k}={v.get(k)!r} is not a whole number")
            return 0

    fifo = v.get("QueueType") == "fifo"
    timeout, visibility, batch = num("ConsumerTimeout"), num("QueueVisibilityTimeout"), num("BatchSize")
    window = 0 if fifo else num("MaximumBatchingWindowInSeconds")
    need = 6 * timeout + window
    if visibility < need:
        out.append(
            f"QueueVisibilityTimeout={visibility} is below 6 x ConsumerTimeout + "
            f"MaximumBatchingWindowInSeconds = 6 x {timeout} + {window} = {need}: AWS refuses a "
            f"mapping whose queue's visibility timeout is below the function timeout, and "
            f"recommends at least {need} s so a batch is not redelivered while it still runs. "
            f"Raise QueueVisibilityTimeout to {need} or lower ConsumerTimeout."
        )
    if fifo and batch > 10:
        out.append(f"BatchSize={batch} with QueueType=fifo: FIFO mappings take at most 10.")
    if not fifo and batch > 10 and window < 1:
        out.append(f"BatchSize={batch} needs MaximumBatchingWindowInSeconds >= 1 (AWS's rule above 10).")
    if v.get("PollingMode") == "provisioned" and num("MinimumPollers") > num("MaximumPollers"):
        out.append(f"MinimumPollers={v['MinimumPollers']} is above MaximumPollers={v['MaximumPollers']}.")
    return out


def main(argv: list[str]) -> int:
    template = Path(__file__).with_name("template.yaml")
    args = list(argv)
    if args[:1] == ["--template"]:
        template, args = Path(args[1]), args[2:]
    values = defaults(template.read_text())
    for a in args:
        k, sep, val = a.partition("=")
        if not sep:
            print(f"not Key=Value: {a!r}", file=sys.stderr)
            return 2
        values[k] = val
    found = problems(values)
    for p in found:
        print(f"refused: {p}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
