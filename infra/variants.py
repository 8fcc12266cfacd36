#!/usr/bin/env python3
"""The supported ways to run the stack, as parameter sets of
infra/template.yaml, and each rendered as the template CloudFormation would
see for it: parameter defaults set to the variant's values, every condition
evaluated, `Fn::If` replaced by the branch taken and resources of false
conditions removed. infra/check.sh lints, scans and checks the IAM of each
rendered variant, so a mistake in a branch the defaults never take still fails.

    python infra/variants.py render <template> <out-dir>   # writes <variant>.yaml, prints the paths
    python infra/variants.py list                          # name and parameters, one a line

Needs only the standard library and PyYAML's loader from aws-sam-cli
(`samcli.yamlhelper`), run with the python of .venv-infra/aws.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

# Placeholders in AWS's documented formats; nothing is created offline.
MI_NETWORK = {
    "ManagedInstancesSubnetIds": "subnet-0123456789abcdef0,subnet-0fedcba9876543210",
    "ManagedInstancesSecurityGroupIds": "sg-0123456789abcdef0",
}

QUEUE = {"standard": {"QueueType": "standard"}, "fifo": {"QueueType": "fifo"}}
POLLING = {
    "on-demand": {"PollingMode": "on-demand"},
    "provisioned": {"PollingMode": "provisioned", "MinimumPollers": "2", "MaximumPollers": "20"},
}
COMPUTE = {
    "lambda": {"ConsumerCompute": "lambda"},
    "managed-instances": {"ConsumerCompute": "managed-instances", **MI_NETWORK},
}


def variants() -> dict[str, dict[str, str]]:
    """Every supported combination: queue type x polling mode x compute."""
    out = {}
    for (q, qp), (p, pp), (c, cp) in itertools.product(QUEUE.items(), POLLING.items(), COMPUTE.items()):
        out[f"{q}-{p}-{c}"] = {**qp, **pp, **cp}
    return out


class Renderer:
    def __init__(self, template: dict, values: dict[str, str]):
        self.t = template
        self.values = {k: str(p.get("Default", "")) for k, p in template.get("Parameters", {}).items()}
        unknown = set(values) - set(self.values)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}")
        self.values.update(values)
        self.conditions = {}

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = self.truth(self.t["Conditions"][name])
        return self.conditions[name]

    def scalar(self, v):
        if isinstance(v, dict) and set(v) == {"Ref"} and v["Ref"] in self.values:
            return self.values[v["Ref"]]
        if isinstance(v, (dict, list)):
            raise ValueError(f"cannot evaluate {v!r} in a condition")
        return str(v).lower() if isinstance(v, bool) else str(v)

    def truth(self, c) -> bool:
        (fn, args), = c.items()
        if fn == "Fn::Equals":
            return self.scalar(args[0]) == self.scalar(args[1])
        if fn == "Fn::Not":
            return not self.truth(args[0])
        if fn == "Fn::And":
            return all(self.truth(a) for a in args)
        if fn == "Fn::Or":
            return any(self.truth(a) for a in args)
        if fn == "Condition":
            return self.condition(args)
        raise ValueError(f"unsupported condition function {fn}")

    NOVALUE = object()

    def resolve(self, v):
        if isinstance(v, dict):
            if set(v) == {"Fn::If"}:
                name, yes, no = v["Fn::If"]
                return self.resolve(yes if self.condition(name) else no)
            if v == {"Ref": "AWS::NoValue"}:
                return self.NOVALUE
            out = {}
            for k, x in v.items():
                r = self.resolve(x)
                if r is not self.NOVALUE:
                    out[k] = r
            return out
        if isinstance(v, list):
            return [r for r in (self.resolve(x) for x in v) if r is not self.NOVALUE]
        return v

    def render(self) -> dict:
        t = json.loads(json.dumps(self.t))  # a deep copy
        for k, p in t.get("Parameters", {}).items():
            p["Default"] = self.values[k]
            if p.get("Type") == "Number":
                p["Default"] = int(self.values[k]) if self.values[k].isdigit() else self.values[k]
        for section in ("Resources", "Outputs"):
            kept = {}
            for lid, r in t.get(section, {}).items():
                cond = r.pop("Condition", None)
                if cond is None or self.condition(cond):
                    kept[lid] = self.resolve(r)
            t[section] = kept
        t.pop("Conditions", None)
        return t


def render_all(template_path: str, out_dir: str) -> list[Path]:
    from samcli.yamlhelper import yaml_dump, yaml_parse

    template = yaml_parse(Path(template_path).read_text())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.yaml"):
        old.unlink()
    paths = []
    for name, values in variants().items():
        rendered = Renderer(template, values).render()
        path = out / f"{name}.yaml"
        path.write_text(f"# {name}: infra/template.yaml with {values}\n" + yaml_dump(rendered))
        paths.append(path)
    return paths


def main() -> int:
    if len(sys.argv) >= 2 and sys.argv[1] == "list":
        for name, values in variants().items():
            print(name, " ".join(f"{k}={v}" for k, v in values.items()))
        return 0
    if len(sys.argv) == 4 and sys.argv[1] == "render":
        for p in render_all(sys.argv[2], sys.argv[3]):
            print(p)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
