"""Command line: ``python -m ra_guard schema|policies|show NAME|validate FILE...``.

Example:
    $ python -m ra_guard schema > policy.schema.json
    $ python -m ra_guard validate my-policies/*.yaml

``show`` exits 2 with the message alone when no policy has that name;
``validate`` checks every file given, prints every error of each, and exits 1
if any file is invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ra_guard.evaluation import cli as evaluation_cli
from ra_guard.exceptions import PolicyError
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
    evaluation_cli.add_commands(sub)
    args = parser.parse_args(argv)
    if args.command in evaluation_cli.COMMANDS:
        return evaluation_cli.run(args)

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


if __name__ == "__main__":
    raise SystemExit(main())
