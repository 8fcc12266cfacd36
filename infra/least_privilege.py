#!/usr/bin/env python3
"""Least-privilege check of infra/template.yaml: run it with the python of
.venv-infra/aws (group lint: aws-sam-cli's YAML loader and aws-sam-translator).

    .venv-infra/aws/bin/python infra/least_privilege.py [template ...]

It reads the template as written and as SAM expands it (so roles, policy
templates and managed policies that SAM generates are seen too) and checks
every policy statement: identity policies (role inline policies,
AWS::IAM::Policy/ManagedPolicy, attached managed policies) and resource
policies (bucket, queue and topic policies). An Allow statement fails when

  - it uses NotAction or NotResource;
  - an action has a wildcard (`*`, `s3:*`, `s3:Put*`);
  - a resource is `*` or has a wildcard, except the two AWS requires:
    `*` for the X-Ray actions (X-Ray has no resource-level permissions) and a
    trailing `*` on an S3 object ARN of a bucket of this template (object
    keys under a prefix);
  - a managed policy is attached whose statements are not known here.

Deny statements may use wildcards (the TLS-only `Deny s3:*` policies).
Then each function's role must allow exactly the expected actions, and
every other role must be one this check expects (the Managed Instances
capacity provider's operator role, with exactly AWS's operator policy).

Give it several templates (infra/check.sh passes every rendered variant of
infra/variants.py) and it checks each, in one process.

Before checking the template it checks itself on a bad and a good snippet,
so a checker that cannot fail fails. Exit 0: all good; 1: findings; 2: the
self-check or the template could not be read.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

# X-Ray has no resource-level permissions: AWS requires "*" for these
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsx-ray.html).
# The write pair is what Lambda active tracing needs; the sampling reads are
# in AWSXRayDaemonWriteAccess / AWSXrayWriteOnlyAccess, which SAM attaches
# to roles it generates for functions with Tracing.
STAR_ALLOWED = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries",
}

# Managed policies whose content is known; anything else attached fails.
KNOWN_MANAGED = {
    "AWSXRayDaemonWriteAccess": [
        {"Effect": "Allow", "Action": sorted(STAR_ALLOWED), "Resource": "*"},
    ],
    "AWSXrayWriteOnlyAccess": [  # what SAM attaches for Tracing on a role it generates
        {"Effect": "Allow", "Action": sorted(STAR_ALLOWED), "Resource": "*"},
    ],
    "AWSLambdaBasicExecutionRole": [
        {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream",
                                       "logs:PutLogEvents"], "Resource": "*"},
    ],
    "AWSLambdaSQSQueueExecutionRole": [
        {"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage",
                                       "sqs:GetQueueAttributes", "logs:CreateLogGroup",
                                       "logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": "*"},
    ],
}

# AWS's policy for a Lambda Managed Instances operator role, as documented in
# the Lambda developer guide ("Lambda operator role for Lambda Managed
# Instances", read 2026-12-01; AWS added ec2:DescribeVpcEncryptionControls in
# April 2026 and CloudWatch Logs writes in June 2026). It is attached as AWS
# keeps it, not copied inline, so that Lambda gets what it needs as it changes.
# Its wildcards are AWS's and reviewed here, not exempted blindly: instance,
# network-interface and volume ARNs of resources that do not exist yet, only
# when Lambda's scaler is their operator; subnets and security groups; Amazon's
# images; and EC2 Describe calls, which have no resource-level permissions.
KNOWN_MANAGED["AWSLambdaManagedEC2ResourceOperator"] = [
    {"Effect": "Allow", "Action": ["ec2:RunInstances", "ec2:CreateTags", "ec2:AttachNetworkInterface"],
     "Resource": ["arn:aws:ec2:*:*:instance/*", "arn:aws:ec2:*:*:network-interface/*",
                  "arn:aws:ec2:*:*:volume/*"],
     "Condition": {"StringEquals": {"ec2:ManagedResourceOperator": "scaler.lambda.amazonaws.com"}}},
    {"Effect": "Allow", "Action": ["ec2:DescribeAvailabilityZones", "ec2:DescribeCapacityReservations",
                                   "ec2:DescribeInstances", "ec2:DescribeInstanceStatus",
                                   "ec2:DescribeInstanceTypeOfferings", "ec2:DescribeInstanceTypes",
                                   "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets",
                                   "ec2:DescribeVpcEncryptionControls"], "Resource": "*"},
    {"Effect": "Allow", "Action": ["ec2:RunInstances", "ec2:CreateNetworkInterface"],
     "Resource": ["arn:aws:ec2:*:*:subnet/*", "arn:aws:ec2:*:*:security-group/*"]},
    {"Effect": "Allow", "Action": ["ec2:RunInstances"], "Resource": ["arn:aws:ec2:*:*:image/*"],
     "Condition": {"StringEquals": {"ec2:Owner": "amazon"}}},
    {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
     "Resource": "*"},
]
# Managed policies whose wildcards AWS requires (reviewed above); any other
# managed policy's statements are checked like the template's own.
REVIEWED_MANAGED = {"AWSLambdaManagedEC2ResourceOperator"}

XRAY_WRITE = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
LOGS_WRITE = {"logs:CreateLogStream", "logs:PutLogEvents"}
CONSUMER = LOGS_WRITE | XRAY_WRITE | {
    "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
    "s3:PutObject", "dynamodb:BatchWriteItem",
}
# Function -> the actions its role allows. A template holds one of the two
# consumers (classic Lambda or Managed Instances) and the producer; a function
# not listed here fails the check.
EXPECTED = {
    "ConsumerFunction": CONSUMER,
    "ConsumerManagedFunction": CONSUMER,
    "ProducerFunction": LOGS_WRITE | XRAY_WRITE | {"sqs:SendMessage", "dynamodb:GetItem"},
}
# Roles that belong to no function: role -> the managed policies it has,
# exactly, and no inline policy.
EXPECTED_OTHER_ROLES = {
    "CapacityProviderOperatorRole": {"AWSLambdaManagedEC2ResourceOperator"},
}


def as_list(v):
    return v if isinstance(v, list) else [v]


def branches(v):
    """The values an intrinsic-laden value can take (both sides of Fn::If)."""
    if isinstance(v, dict) and set(v) == {"Fn::If"}:
        _, yes, no = v["Fn::If"]
        return branches(yes) + branches(no)
    if isinstance(v, dict) and set(v) == {"Ref"} and v["Ref"] == "AWS::NoValue":
        return []
    return [v]


def flat(v):
    out = []
    for b in branches(v):
        for item in as_list(b):
            out.extend(branches(item))
    return out


def managed_name(arn):
    """`AWSXRayDaemonWriteAccess` from its ARN in any written form."""
    if isinstance(arn, dict):
        if "Fn::Sub" in arn:
            arn = as_list(arn["Fn::Sub"])[0]
        elif "Fn::Join" in arn:
            arn = "".join(p if isinstance(p, str) else "" for p in arn["Fn::Join"][1])
        else:
            return None
    return arn.rsplit("/", 1)[-1] if isinstance(arn, str) else None


def resource_text(r):
    """A resource as text with placeholders, or None for a Ref/GetAtt (one
    resource of this template, or a parameter: never a wildcard)."""
    if isinstance(r, str):
        return r
    if isinstance(r, dict) and "Fn::Sub" in r:
        return as_list(r["Fn::Sub"])[0]
    if isinstance(r, dict) and "Fn::Join" in r:
        return "".join(p if isinstance(p, str) else "${x}" for p in r["Fn::Join"][1])
    return None


def s3_object_arn_of_own_bucket(text, buckets):
    prefix = "arn:${AWS::Partition}:s3:::"
    if not text.startswith(prefix) or text.count("*") != 1 or not text.endswith("*"):
        return False
    bucket, _, _ = text[len(prefix):].partition("/")
    return "/" in text[len(prefix):] and bucket.strip("${}").split(".")[0] in buckets


def check_statement(where, st, buckets):
    problems = []
    if st.get("Effect") != "Allow":
        return problems
    for key in ("NotAction", "NotResource", "NotPrincipal"):
        if key in st:
            problems.append(f"{where}: Allow with {key}")
    actions = [a for a in flat(st.get("Action", [])) if isinstance(a, str)]
    for a in actions:
        if "*" in a or "?" in a:
            problems.append(f"{where}: wildcard action {a!r}")
    for r in flat(st.get("Resource", [])):
        text = resource_text(r)
        if text is None or ("*" not in text and "?" not in text):
            continue
        if text == "*" and actions and set(actions) <= STAR_ALLOWED:
            continue
        if s3_object_arn_of_own_bucket(text, buckets):
            continue
        problems.append(f"{where}: wildcard resource {text!r} for {sorted(actions)}")
    return problems


def statements_of(doc):
    return [s for s in flat(doc.get("Statement", [])) if isinstance(s, dict)] if isinstance(doc, dict) else []


def collect(template):
    """(where, statement, owner role logical id or None) for every statement,
    and the findings of managed policies that cannot be checked."""
    resources = template.get("Resources", {})
    out, problems = [], []
    for lid, res in resources.items():
        t, props = res.get("Type"), res.get("Properties", {}) or {}
        if t == "AWS::IAM::Role":
            for pol in flat(props.get("Policies", [])):
                for i, st in enumerate(statements_of(pol.get("PolicyDocument"))):
                    out.append((f"{lid}/{pol.get('PolicyName')}[{i}]", st, lid))
            for arn in flat(props.get("ManagedPolicyArns", [])):
                name = managed_name(arn)
                if name in KNOWN_MANAGED:
                    for i, st in enumerate(KNOWN_MANAGED[name]):
                        out.append((f"{lid}/managed:{name}[{i}]", st, lid))
                else:
                    problems.append(f"{lid}: managed policy {arn!r} is not known to this check")
        elif t in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            roles = [r.get("Ref") for r in flat(props.get("Roles", [])) if isinstance(r, dict)]
            for i, st in enumerate(statements_of(props.get("PolicyDocument"))):
                for role in roles or [None]:
                    out.append((f"{lid}[{i}]", st, role))
        elif t in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"):
            for i, st in enumerate(statements_of(props.get("PolicyDocument"))):
                out.append((f"{lid}[{i}]", st, None))
        elif t == "AWS::Serverless::Function":
            for i, pol in enumerate(flat(props.get("Policies", []))):
                if isinstance(pol, str):
                    name = managed_name(pol)
                    if name not in KNOWN_MANAGED:
                        problems.append(f"{lid}: policy {pol!r} is not known to this check")
                elif isinstance(pol, dict) and "Statement" in pol:
                    for j, st in enumerate(statements_of(pol)):
                        out.append((f"{lid}/Policies[{i}][{j}]", st, None))
                # SAM policy templates (dicts like {SQSPollerPolicy: ...}) are
                # checked in their expanded form.
    return out, problems


def check(template, expanded=None, expected=None, other_roles=None):
    """All findings for a template (and its SAM expansion, when given)."""
    other_roles = EXPECTED_OTHER_ROLES if other_roles is None else other_roles
    problems = []
    for label, tpl in (("template", template), ("expanded", expanded)):
        if tpl is None:
            continue
        buckets = {lid for lid, r in tpl.get("Resources", {}).items() if r.get("Type") == "AWS::S3::Bucket"}
        stmts, unknown = collect(tpl)
        problems += [f"[{label}] {p}" for p in unknown]
        for where, st, _ in stmts:
            if any(f"/managed:{name}[" in where for name in REVIEWED_MANAGED):
                continue
            problems += [f"[{label}] {p}" for p in check_statement(where, st, buckets)]
    if expected:
        tpl = expanded or template
        resources = tpl.get("Resources", {})
        stmts, _ = collect(tpl)
        functions = {lid for lid, r in resources.items()
                     if r.get("Type") in ("AWS::Lambda::Function", "AWS::Serverless::Function")}
        for fn in sorted(functions - set(expected)):
            problems.append(f"{fn}: a function this check does not know (add it to EXPECTED)")
        function_roles = set()
        for fn in sorted(functions & set(expected)):
            role = resources[fn].get("Properties", {}).get("Role")
            if isinstance(role, dict) and "Fn::GetAtt" in role:
                function_roles.add(role["Fn::GetAtt"][0])
        for lid, r in resources.items():
            if r.get("Type") != "AWS::IAM::Role" or lid in function_roles:
                continue
            props = r.get("Properties", {}) or {}
            if lid not in other_roles:
                problems.append(f"{lid}: a role of no expected function and not in EXPECTED_OTHER_ROLES")
                continue
            managed = {managed_name(a) for a in flat(props.get("ManagedPolicyArns", []))}
            if managed != other_roles[lid] or flat(props.get("Policies", [])):
                problems.append(f"{lid}: has managed policies {sorted(managed)} and"
                                f" {len(flat(props.get('Policies', [])))} inline ones;"
                                f" expected exactly {sorted(other_roles[lid])} and none")
        for fn, want in expected.items():
            if fn not in functions:
                continue  # the other consumer, in a variant that does not create it
            res = resources.get(fn, {})
            role = res.get("Properties", {}).get("Role")
            role_id = role.get("Fn::GetAtt", [None])[0] if isinstance(role, dict) else None
            if role_id is None:
                problems.append(f"{fn}: no role of this template found")
                continue
            got = {a for _, st, owner in stmts if owner == role_id and st.get("Effect") == "Allow"
                   for a in flat(st.get("Action", [])) if isinstance(a, str)}
            if got != want:
                extra, missing = sorted(got - want), sorted(want - got)
                problems.append(f"{fn} ({role_id}): actions differ from the expected set;"
                                f" extra {extra}, missing {missing}")
    return problems


def expand(template):
    """The template as SAM expands it, offline (no IAM look-ups)."""
    import os

    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # SAM reads it; no call is made

    tpl = copy.deepcopy(template)
    for res in tpl.get("Resources", {}).values():
        if res.get("Type") == "AWS::Serverless::Function":
            res["Properties"]["CodeUri"] = "s3://bucket/key.zip"  # local paths are packaged first
    known = {name: f"arn:aws:iam::aws:policy/{name}" for name in KNOWN_MANAGED}
    params = {"AWS::Region": "us-east-1", "AWS::Partition": "aws", "AWS::AccountId": "123456789012"}
    return Translator(None, Parser()).translate(tpl, parameter_values=params,
                                                get_managed_policy_map=lambda: known)


def self_check():
    bad = {"Resources": {
        "B": {"Type": "AWS::S3::Bucket"},
        "R": {"Type": "AWS::IAM::Role", "Properties": {
            "ManagedPolicyArns": ["arn:aws:iam::aws:policy/AdministratorAccess"],
            "Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": [
                {"Effect": "Allow", "Action": "s3:*", "Resource": {"Fn::Sub": "${B.Arn}"}},
                {"Effect": "Allow", "Action": "dynamodb:Get*", "Resource": {"Fn::GetAtt": ["T", "Arn"]}},
                {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"},
                {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:*:*:q"},
                {"Effect": "Allow", "NotAction": "iam:*", "Resource": {"Fn::GetAtt": ["B", "Arn"]}},
                {"Effect": "Allow", "Action": ["xray:PutTraceSegments", "s3:GetObject"], "Resource": "*"},
                {"Effect": "Allow", "Action": "s3:PutObject",
                 "Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::other-bucket/*"}},
            ]}}]}},
        "F": {"Type": "AWS::Serverless::Function", "Properties": {"Role": {"Fn::GetAtt": ["R", "Arn"]}}},
        "G": {"Type": "AWS::Serverless::Function", "Properties": {"Role": {"Fn::GetAtt": ["R", "Arn"]}}},
        "Stray": {"Type": "AWS::IAM::Role", "Properties": {}},
        "Op": {"Type": "AWS::IAM::Role", "Properties": {"ManagedPolicyArns": [
            "arn:aws:iam::aws:policy/AWSLambdaManagedEC2ResourceOperator",
            "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"]}},
    }}
    good = {"Resources": {
        "B": {"Type": "AWS::S3::Bucket"},
        "R": {"Type": "AWS::IAM::Role", "Properties": {"Policies": [{"PolicyName": "p", "PolicyDocument": {
            "Statement": [
                {"Effect": "Allow", "Action": "s3:PutObject",
                 "Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::${B}/records/*"}},
                {"Effect": "Allow", "Action": ["xray:PutTraceSegments"], "Resource": "*"},
                {"Effect": "Deny", "Action": "s3:*", "Resource": "*"},
            ]}}]}},
        "F": {"Type": "AWS::Serverless::Function", "Properties": {"Role": {"Fn::GetAtt": ["R", "Arn"]}}},
        "Op": {"Type": "AWS::IAM::Role", "Properties": {"ManagedPolicyArns": [
            {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AWSLambdaManagedEC2ResourceOperator"}]}},
    }}
    ops = {"Op": {"AWSLambdaManagedEC2ResourceOperator"}}
    found = check(bad, expected={"F": {"s3:PutObject"}}, other_roles=ops)
    wanted = ["AdministratorAccess", "'s3:*'", "'dynamodb:Get*'", "wildcard resource '*'",
              "arn:aws:sqs:*:*:q", "NotAction", "s3:GetObject", "other-bucket", "actions differ",
              "G: a function this check does not know", "Stray: a role of no expected function",
              "Op: has managed policies"]
    missed = [w for w in wanted if not any(w in p for p in found)]
    clean = check(good, expected={"F": {"s3:PutObject", "xray:PutTraceSegments"}}, other_roles=ops)
    if missed or clean:
        print("least-privilege self-check FAILED: the checker", file=sys.stderr)
        if missed:
            print(f"  missed problems in the bad snippet: {missed}", file=sys.stderr)
        for p in clean:
            print(f"  flagged the good snippet: {p}", file=sys.stderr)
        return False
    return True


def check_file(path):
    """0: good; 1: findings; 2: could not read or expand."""
    try:
        from samcli.yamlhelper import yaml_parse

        template = yaml_parse(path.read_text())
        expanded = expand(template)
    except Exception as err:  # noqa: BLE001 - any failure to read is fatal
        print(f"least-privilege: cannot read or expand {path}: {err}", file=sys.stderr)
        return 2
    problems = check(template, expanded, EXPECTED)
    for p in problems:
        print(f"FAIL {path.name}: {p}")
    stmts, _ = collect(expanded)
    allows = sum(1 for _, st, _ in stmts if st.get("Effect") == "Allow")
    roles = sorted(lid for lid, r in expanded["Resources"].items() if r.get("Type") == "AWS::IAM::Role")
    if problems:
        print(f"least-privilege: {len(problems)} problem(s) in {path}")
        return 1
    print(f"least-privilege: ok {path.name}: {allows} Allow statements in the template and its SAM"
          f" expansion; roles {', '.join(roles)} allow exactly the expected actions")
    return 0


def main():
    paths = [Path(a) for a in sys.argv[1:]] or [Path(__file__).with_name("template.yaml")]
    if not self_check():
        return 2
    print("least-privilege: self-check caught every planted problem")
    return max(check_file(p) for p in paths)


if __name__ == "__main__":
    sys.exit(main())
