#!/usr/bin/env python3
"""Refuse parameter values AWS would refuse or advise against, before a
deploy. infra/deploy-aws.sh and infra/local/deploy.sh run it (with the
Python of .venv-infra/aws or .venv, which have PyYAML).

    python infra/check_parameters.py [--template infra/template.yaml] Key=Value ...

The template is read with PyYAML; its CloudFormation tags (!Ref, !Sub, ...)
are skipped, since only the Parameters section is used. Values
not given are the template's defaults. Checked: what CloudFormation checks
per parameter at deploy (a known name, AllowedValues, Number, MinValue,
MaxValue; the emulator does not), and what neither its parameter
constraints nor Rules can express (arithmetic across parameters). Exit 0:
fine; 1: refused, one line per problem naming the parameters; 2: usage.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads any `!Tag value` (!Ref, !Sub, ...) as None: Parameters holds none."""


_CfnLoader.add_multi_constructor("!", lambda loader, tag, node: None)


def _text(value) -> str:
    """A YAML default as CloudFormation passes it: a string (true -> "true")."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def parameters(template: Path) -> dict[str, dict]:
    """The template's Parameters section."""
    return yaml.load(template.read_text(), Loader=_CfnLoader)["Parameters"]


def per_parameter(declared: dict[str, dict], given: dict[str, str]) -> list[str]:
    """What CloudFormation refuses about one value at a time."""
    out = []
    for key, value in given.items():
        p = declared.get(key)
        if p is None:
            out.append(f"{key} is not a parameter of the template (known: {', '.join(sorted(declared))}).")
            continue
        allowed = [_text(a) for a in p.get("AllowedValues") or []]
        if allowed and value not in allowed:
            out.append(f"{key}={value!r} is not one of {', '.join(allowed)}.")
        if p.get("Type") == "Number":
            try:
                number = float(value)
            except ValueError:
                out.append(f"{key}={value!r} is not a number.")
                continue
            if "MinValue" in p and number < float(p["MinValue"]):
                out.append(f"{key}={value} is below its MinValue {p['MinValue']}.")
            if "MaxValue" in p and number > float(p["MaxValue"]):
                out.append(f"{key}={value} is above its MaxValue {p['MaxValue']}.")
    return out


def problems(v: dict[str, str]) -> list[str]:
    """What no parameter constraint or Rule can express: arithmetic across parameters."""
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
    if v.get("ConsumerCompute") == "managed-instances" and not (
        v.get("ManagedInstancesSubnetIds") and v.get("ManagedInstancesSecurityGroupIds")
    ):
        out.append("ConsumerCompute=managed-instances needs ManagedInstancesSubnetIds=subnet-...,subnet-... "
                   "and ManagedInstancesSecurityGroupIds=sg-...")
    return out


def main(argv: list[str]) -> int:
    template = Path(__file__).with_name("template.yaml")
    args = list(argv)
    if args[:1] == ["--template"]:
        template, args = Path(args[1]), args[2:]
    declared = parameters(template)
    given = {}
    for a in args:
        k, sep, val = a.partition("=")
        if not sep:
            print(f"not Key=Value: {a!r}", file=sys.stderr)
            return 2
        given[k] = val
    values = {k: _text(p.get("Default", "")) for k, p in declared.items()} | given
    found = per_parameter(declared, given) + problems(values)
    for p in found:
        print(f"refused: {p}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
