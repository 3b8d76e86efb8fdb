"""Environments without a server: the `.env` reader, validation, masking, sizes."""

from __future__ import annotations

import json

import pytest

from catty_jupyter.core.environments import (
    MASK,
    BadEnvironment,
    Environment,
    format_size,
    parse_dotenv,
    parse_size,
)

DOTENV = """\
# the model
ANTHROPIC_API_KEY=sk-ant-secret-123

MODE="fast"
QUOTED='single'  # not a comment: the value runs to the end of the line
  SPACED = kept as is
EMPTY=
EQUALS=a=b=c
"""


def test_dotenv_keeps_quotes_and_skips_comments_and_blank_lines() -> None:
    assert parse_dotenv(DOTENV) == {
        "ANTHROPIC_API_KEY": "sk-ant-secret-123",
        "MODE": '"fast"',
        "QUOTED": "'single'  # not a comment: the value runs to the end of the line",
        "SPACED": " kept as is",
        "EMPTY": "",
        "EQUALS": "a=b=c",
    }
    assert parse_dotenv("") == {} and parse_dotenv("# only a comment\n\n") == {}
    assert parse_dotenv("A=1\r\nB=2\r\n") == {"A": "1", "B": "2"}


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("A=1\n\n# c\nnot a pair\n", 4, "no '='"),
        ("A=1\n1BAD=x\n", 2, "not a variable name"),
        ("export A=1\n", 1, "not a variable name"),
        ("A=1\nB=2\nA=3\n", 3, "already set on line 1"),
        ("HOME=/root\n", 1, "set by the sandbox"),
        ("X=1\nCATTY_LABEL=x\n", 2, "set by the sandbox"),
        ("HTTPS_PROXY=http://p\n", 1, "set by the sandbox"),
        ("A=x\0y\n", 1, "NUL"),
    ],
)
def test_a_malformed_dotenv_line_is_named(text: str, line: int, words: str) -> None:
    with pytest.raises(BadEnvironment) as err:
        parse_dotenv(text)
    assert err.value.line == line and err.value.field == "env"
    assert err.value.message.startswith(f"line {line}: ") and words in err.value.message
    assert err.value.details() == {"field": "env", "line": line}


def test_a_malformed_line_does_not_echo_what_could_be_a_secret() -> None:
    with pytest.raises(BadEnvironment) as err:
        parse_dotenv("sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789\n")
    assert "abcdefghijklmnop" not in err.value.message


def test_secrets_are_masked_in_json_and_kept_in_the_record() -> None:
    env = Environment.from_json(
        "team", {"env": DOTENV, "secrets": ["ANTHROPIC_API_KEY"], "agent": "shell"}
    )
    shown = env.to_json()
    assert "sk-ant-secret-123" not in json.dumps(shown)
    assert f"ANTHROPIC_API_KEY={MASK}\n" in shown["env"] and 'MODE="fast"\n' in shown["env"]
    assert {"name": "ANTHROPIC_API_KEY", "secret": True} in shown["variables"]
    assert shown["secrets"] == ["ANTHROPIC_API_KEY"] and shown["agent"] == "shell"
    record = env.to_record()
    assert "ANTHROPIC_API_KEY=sk-ant-secret-123\n" in record["env"]
    assert Environment.from_json("team", record).env == env.env  # a record reads back whole


def test_a_secret_sent_back_masked_keeps_its_value() -> None:
    env = Environment.from_json("team", {"env": "KEY=s3cret\nA=1\n", "secrets": ["KEY"]})
    # An editor sends back what it was shown, with one variable changed.
    changed = Environment.from_json(
        "team", {**env.to_json(), "env": f"KEY={MASK}\nA=2\n"}, previous=env
    )
    assert changed.env == {"KEY": "s3cret", "A": "2"} and changed.secrets == {"KEY"}
    # A new value replaces it; the mask for a variable that is not secret is taken literally.
    changed = Environment.from_json("team", {"env": f"KEY=new\nA={MASK}\n"}, previous=env)
    assert changed.env == {"KEY": "new", "A": MASK}


def test_patch_changes_only_the_fields_given() -> None:
    env = Environment.from_json(
        "team", {"network": "custom", "allowed_domains": ["Example.COM."], "description": "d",
                 "resources": {"cpus": 2, "memory": "4G"}, "setup_script": "echo a\r\necho b"},
    )  # fmt: skip
    assert env.allowed_domains == ("example.com",) and env.setup_script == "echo a\necho b"
    changed = Environment.from_json("team", {"description": "new"}, previous=env)
    assert changed.description == "new" and changed.network == "custom"
    assert changed.allowed_domains == env.allowed_domains and changed.resources == env.resources
    assert changed.setup_script == env.setup_script


@pytest.mark.parametrize(
    ("name", "data", "field"),
    [
        ("Team", {}, "name"),
        ("-team", {}, "name"),
        ("x" * 64, {}, "name"),
        ("team", {"network": "internet"}, "network"),
        ("team", {"nope": 1}, "nope"),
        ("team", {"env": {"A": "1"}}, "env"),
        ("team", {"env": "A=1", "secrets": ["B"]}, "secrets"),
        ("team", {"secrets": "A"}, "secrets"),
        ("team", {"allowed_domains": ["https://example.com/x"]}, "allowed_domains"),
        ("team", {"allowed_domains": ["ex*ample.com"]}, "allowed_domains"),
        ("team", {"include_defaults": "yes"}, "include_defaults"),
        ("team", {"options": []}, "options"),
        ("team", {"agent": 5}, "agent"),
        ("team", {"resources": {"gpus": 1}}, "resources"),
        ("team", {"resources": {"cpus": 0}}, "cpus"),
        ("team", {"resources": {"cpus": "many"}}, "cpus"),
        ("team", {"resources": {"cpus": 10**400}}, "cpus"),
        ("team", {"resources": {"memory": "lots"}}, "memory"),
        ("team", {"resources": {"disk": -1}}, "disk"),
        ("team", {"resources": {"disk": "9" * 400}}, "disk"),
    ],
)
def test_a_bad_definition_names_its_field(name: str, data: dict[str, object], field: str) -> None:
    with pytest.raises(BadEnvironment) as err:
        Environment.from_json(name, data)
    assert err.value.field == field and err.value.status == 400


def test_config_takes_variables_as_a_mapping_and_is_read_only() -> None:
    env = Environment.from_config("admin", {"env": {"TOKEN": "t0k", "N": 3}, "secrets": ["TOKEN"]})
    assert env.read_only and env.env == {"TOKEN": "t0k", "N": "3"}
    assert "t0k" not in json.dumps(env.to_json()) and env.secret_values == ["t0k"]


@pytest.mark.parametrize(
    ("value", "size"),
    [(None, None), ("", None), (1024, 1024), ("512M", 512 << 20), ("2G", 2 << 30),
     ("1.5GiB", 3 << 29), ("10 gb", 10 << 30), ("7", 7), ("1k", 1024)],
)  # fmt: skip
def test_sizes(value: object, size: int | None) -> None:
    assert parse_size(value, "memory") == size


def test_sizes_read_back() -> None:
    assert [format_size(s) for s in (None, 512, 2 << 30, 3 << 29, 512 << 20)] == [
        "-", "512B", "2G", "1.5G", "512M",
    ]  # fmt: skip
    with pytest.raises(BadEnvironment):
        parse_size(True, "memory")


def test_a_wildcard_over_a_whole_top_level_domain_is_refused() -> None:
    from catty_jupyter.core.network import BadDomain, NetworkPolicy, normalize_pattern

    with pytest.raises(BadDomain, match="top-level domain"):
        normalize_pattern("*.com")
    assert normalize_pattern("*.Example.COM.") == "*.example.com"
    # The model endpoint's host, as a URL gives it, still matches.
    assert NetworkPolicy("custom", always_allowed=("API.anthropic.com.",)).allows(
        "api.anthropic.com"
    )
