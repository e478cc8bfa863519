"""Policies: loading, shipped library, and errors that name the file and field."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from ra_guard import Policy, PolicyError, PolicyKind, list_policies, load_policy, policy_json_schema
from ra_guard.policy import MAX_POLICY_BYTES, MAX_WEIGHT

VALID = """\
name: cites-sources
description: Cites a source for each claim.
kind: hard
min_score: 4
weight: 2
on_judge_error: fail_closed
principle: Every factual claim names its source.
"""


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_loads_a_users_file(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, VALID))
    assert policy.name == "cites-sources"
    assert policy.kind is PolicyKind.HARD and policy.is_hard
    assert policy.min_score == 4 and policy.weight == 2
    assert policy.on_judge_error == "fail_closed"


def test_string_path_is_a_path(tmp_path: Path) -> None:
    assert load_policy(str(write(tmp_path, VALID))).name == "cites-sources"


def test_defaults_are_soft_fail_open() -> None:
    policy = Policy(name="x", principle="Be kind.")
    assert (policy.kind, policy.min_score, policy.weight, policy.on_judge_error) == (
        PolicyKind.SOFT,
        3,
        1.0,
        "fail_open",
    )


def test_at_least_eight_shipped_policies_all_valid() -> None:
    names = list_policies()
    assert len(names) >= 8
    for expected in (
        "concise",
        "thorough",
        "harmless",
        "honest-about-uncertainty",
        "no-personal-data",
        "professional-tone",
        "grounded-in-context",
        "valid-json-only",
    ):
        assert expected in names
    for name in names:
        policy = load_policy(name)
        assert policy.name == name, "a shipped file's name field must match its file name"
        assert len(policy.principle.split()) >= 25, f"{name}: principle too thin to guide a judge"
        assert policy.description


def test_unknown_shipped_name_suggests_the_closest() -> None:
    with pytest.raises(PolicyError, match="did you mean 'concise'"):
        load_policy("consise")


@pytest.mark.parametrize(
    ("text", "field", "fragment"),
    [
        (VALID + "severity: high\n", "severity", "unknown key; allowed keys: name, description, principle"),
        (VALID.replace("on_judge_error", "on_judge_eror"), "on_judge_eror", "did you mean 'on_judge_error'"),
        ("name: x\nkind: soft\n", "principle", "is required: write the rule"),
        (VALID.replace("min_score: 4", "min_score: 7"), "min_score", "must be a number from 1 to 5, got 7"),
        (VALID.replace("min_score: 4", "min_score: high"), "min_score", "must be a number from 1 to 5"),
        (VALID.replace("kind: hard", "kind: strict"), "kind", "must be one of: soft, hard; got 'strict'"),
        (VALID.replace("fail_closed", "retry"), "on_judge_error", "must be one of: fail_open, fail_closed"),
        (VALID.replace("weight: 2", "weight: 0"), "weight", "greater than 0"),
        (VALID.replace("name: cites-sources", "name: has space"), "name", "letters, digits"),
        ("name: x\nprinciple: '   '\n", "principle", "blank"),
    ],
)
def test_bad_fields_name_the_file_and_field(tmp_path: Path, text: str, field: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    err = info.value
    assert err.file == str(path)
    assert err.field == field
    assert fragment in str(err)
    assert str(path) in str(err)


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    with pytest.raises(PolicyError, match="the file is empty") as info:
        load_policy(path)
    assert info.value.file == str(path) and info.value.field is None


def test_yaml_syntax_error_has_line_number(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nprinciple: fine\nkind: [soft\nweight: 1\n")
    with pytest.raises(PolicyError, match="YAML syntax error") as info:
        load_policy(path)
    assert info.value.line is not None and info.value.line >= 3
    assert f"{path}:{info.value.line}" in str(info.value)


def test_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="expected a mapping"):
        load_policy(write(tmp_path, "- a\n- b\n"))


def test_missing_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError, match="file not found") as info:
        load_policy(missing)
    assert info.value.file == str(missing)


def test_json_schema_validates_shipped_files_and_rejects_bad_ones() -> None:
    schema = policy_json_schema()
    json.dumps(schema)  # exportable as a file
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for name in list_policies():
        validator.validate(load_policy(name).model_dump(mode="json"))
    assert not validator.is_valid({"name": "x", "principle": "p", "min_score": 7})
    assert not validator.is_valid({"name": "x", "principle": "p", "colour": "red"})


def test_content_hash_changes_with_content() -> None:
    a = Policy(name="a", principle="Be brief.")
    assert a.content_hash == Policy(name="a", principle="Be brief.").content_hash
    assert a.content_hash != Policy(name="a", principle="Be brief!").content_hash


def test_command_line_schema_and_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ra_guard.__main__ import main

    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "ra-guard policy"
    good, bad = write(tmp_path, VALID, "good.yaml"), write(tmp_path, "name: x\n", "bad.yaml")
    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(good), str(bad)]) == 1
    captured = capsys.readouterr()
    assert "ok  " in captured.out and "bad.yaml: field principle: is required" in captured.err


# --- files that are not what they claim, and numbers YAML makes of words ------------------------


def test_non_utf8_bytes_name_the_file_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    data = "name: x\nprinciple: Soyez poli, s'il vous plaît.\n".encode("latin-1")
    path.write_bytes(data)
    with pytest.raises(PolicyError, match="save it as UTF-8") as info:
        load_policy(path)
    assert info.value.file == str(path)
    offset = data.index("î".encode("latin-1"))
    assert f"byte {offset} is 0xee" in str(info.value)


def test_utf16_is_named(tmp_path: Path) -> None:
    path = tmp_path / "utf16.yaml"
    path.write_bytes(VALID.encode("utf-16"))
    with pytest.raises(PolicyError, match=r"UTF-16.*save it as UTF-8") as info:
        load_policy(path)
    assert info.value.file == str(path)


def test_utf8_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(VALID.encode("utf-8-sig"))
    assert load_policy(path).name == "cites-sources"


def test_a_device_is_refused_without_reading_it() -> None:
    with pytest.raises(PolicyError, match="not a regular file") as info:
        load_policy(Path("/dev/zero"))
    assert info.value.file == "/dev/zero"


def test_a_huge_file_is_refused_after_reading_only_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"name: x\nprinciple: " + b"a" * (50 * 1024 * 1024) + b"\n")
    reads: list[int] = []
    real_open = Path.open

    def counting_open(self: Path, *args: object, **kwargs: object) -> object:
        handle = real_open(self, *args, **kwargs)  # type: ignore[call-overload]
        real_read = handle.read

        def read(size: int = -1) -> bytes:
            data = real_read(size)
            reads.append(len(data))
            return data  # type: ignore[no-any-return]

        handle.read = read
        return handle

    monkeypatch.setattr(Path, "open", counting_open)
    with pytest.raises(PolicyError, match="larger than 1048576 bytes") as info:
        load_policy(path)
    assert info.value.file == str(path)
    assert sum(reads) <= MAX_POLICY_BYTES + 1


def test_huge_yaml_text_is_refused() -> None:
    with pytest.raises(PolicyError, match="at most"):
        Policy.from_yaml("name: x\nprinciple: " + "a" * (MAX_POLICY_BYTES + 1))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("weight", ".inf"),
        ("weight", "-.inf"),
        ("weight", ".nan"),
        ("weight", "1e308"),
        ("weight", "true"),
        ("weight", "'2'"),
        ("weight", "1" + "0" * 400),
        ("min_score", "true"),
        ("min_score", ".nan"),
        ("min_score", "'4'"),
    ],
)
def test_numbers_must_be_finite_bounded_real_numbers(tmp_path: Path, field: str, value: str) -> None:
    path = write(tmp_path, f"name: x\nprinciple: Be kind.\n{field}: {value}\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert info.value.field == field
    assert info.value.file == str(path)
    with pytest.raises(PolicyError):
        Policy.from_dict({"name": "x", "principle": "p", field: True})


def test_ordinary_numbers_still_load() -> None:
    policy = Policy.from_yaml("name: x\nprinciple: p\nweight: 2\nmin_score: 3.5\n")
    assert policy.weight == 2.0 and policy.min_score == 3.5
    assert Policy.from_yaml("name: x\nprinciple: p\nweight: 1000\n").weight == MAX_WEIGHT
