"""Command line: ``python -m ra_guard schema|policies|show|validate|replay|pairs|eval|quality``.

Example:
    $ python -m ra_guard schema > policy.schema.json
    $ python -m ra_guard validate my-policies/*.yaml
    $ python -m ra_guard replay decisions.jsonl --policies new.yaml --judge openai-compat:http://gpu:8000/v1
    $ python -m ra_guard pairs decisions.jsonl -o pairs.jsonl
    $ python -m ra_guard eval data.jsonl --policies concise --judge openai-compat:http://gpu:8000/v1 --out run/
    $ python -m ra_guard quality labelled.jsonl --judge openai-compat:http://gpu:8000/v1

``show`` exits 2 with the message alone when no policy has that name;
``validate`` checks every file given, prints every error of each, and exits 1
if any file is invalid. ``replay`` and ``pairs`` read an audit log written with
``AuditLog(include_text=True)`` and exit 2 with the message alone when it has
no texts (or on another usage error).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ra_guard.evaluation import cli as evaluation_cli
from ra_guard.exceptions import ConfigurationError, PolicyError
from ra_guard.policy import list_policies, load_policy, policy_json_schema, validate_policy_file


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m ra_guard", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("schema", help="print the JSON Schema of a policy file")
    sub.add_parser("policies", help="list the shipped policies")
    show = sub.add_parser("show", help="print a shipped policy as YAML-ready JSON")
    show.add_argument("name")
    validate = sub.add_parser("validate", help="check every policy file given; list every error; exit 1 if any")
    validate.add_argument("files", nargs="+")
    _add_replay(sub)
    _add_pairs(sub)
    evaluation_cli.add_commands(sub)
    args = parser.parse_args(argv)
    if args.command in evaluation_cli.COMMANDS:
        return evaluation_cli.run(args)

    if args.command == "replay":
        return _replay(args)
    if args.command == "pairs":
        return _pairs(args)
    if args.command == "schema":
        print(json.dumps(policy_json_schema(), indent=2))
    elif args.command == "policies":
        for name in list_policies():
            policy = load_policy(name)
            print(f"{name:32} {policy.kind.value:5} min_score={policy.min_score:g}  {policy.description}")
    elif args.command == "show":
        try:
            policy = load_policy(args.name)
        except PolicyError as exc:  # a typo is a usage error: the message, not a traceback
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(policy.model_dump(mode="json"), indent=2, ensure_ascii=False))
    else:
        failed = 0
        for file in args.files:
            errors = validate_policy_file(file)
            for error in errors:
                print(error, file=sys.stderr)
            if errors:
                failed += 1
            else:
                print(f"ok  {file}")
        if failed:
            print(f"{failed} of {len(args.files)} file(s) invalid", file=sys.stderr)
            return 1
    return 0


def _add_replay(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = sub.add_parser(
        "replay",
        help="judge recorded decisions again under other policies or another judge; report flips and blocks",
    )
    replay.add_argument("log", help="an audit log written with AuditLog(include_text=True)")
    replay.add_argument(
        "--policies",
        nargs="+",
        metavar="POLICY",
        help="policy files or shipped names to judge under (default: each decision's recorded policies)",
    )
    replay.add_argument("--judge", required=True, metavar="SPEC", help="e.g. openai-compat:http://gpu:8000/v1")
    replay.add_argument("--report", metavar="FILE", help="write the whole report, examples included, as JSON")
    replay.add_argument("--concurrency", type=int, default=4, help="decisions judged at once (default 4)")
    replay.add_argument("--examples", type=int, default=3, help="examples of each kind printed (default 3)")


def _replay(args: argparse.Namespace) -> int:
    from ra_guard.replay import replay  # the guard and judges load only for this command

    try:
        report = replay(args.log, policies=args.policies, judge=args.judge, concurrency=args.concurrency)
    except ConfigurationError as exc:  # no texts in the log, a bad policy file, an unknown judge
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary(examples=args.examples))
    if args.report:
        with open(args.report, "w", encoding="utf-8") as handle:
            json.dump(report.to_dict(), handle, indent=2, ensure_ascii=False)
        print(f"report written to {args.report}")
    return 0


def _add_pairs(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pairs = sub.add_parser(
        "pairs", help="export chosen/rejected pairs per policy from an audit log, as JSONL for TRL's DPO trainer"
    )
    pairs.add_argument("log", help="an audit log written with AuditLog(include_text=True)")
    pairs.add_argument("-o", "--output", required=True, metavar="FILE", help="the JSONL file to write")
    pairs.add_argument("--policy", action="append", metavar="NAME", help="only this policy's pairs (repeatable)")
    pairs.add_argument("--min-margin", type=float, default=1.0, help="least score difference (default 1)")
    pairs.add_argument("--all-pairs", action="store_true", help="every pair that differs enough, not best vs worst")


def _pairs(args: argparse.Namespace) -> int:
    from ra_guard.pairs import audit_log_pairs, write_pairs

    rows = audit_log_pairs(args.log, policies=args.policy, min_margin=args.min_margin, all_pairs=args.all_pairs)
    try:
        count = write_pairs(rows, args.output)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {count} pair(s) to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
