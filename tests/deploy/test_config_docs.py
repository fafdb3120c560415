"""docs/DEPLOY.md documents every key of ``baat serve``'s configuration, with its variable."""

from __future__ import annotations

import re
from pathlib import Path

from baat.cli._root import serve
from baat.cli.config import env_of, keys

DOC = Path(__file__).resolve().parents[2] / "docs" / "DEPLOY.md"


def test_every_serve_option_is_a_documented_key() -> None:
    text = DOC.read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| `(BAAT_[A-Z_]+)` \|", section, re.M))
    expected = {key: env_of(key) for key in keys(serve)}
    assert rows == expected
    # And each option really reads that variable.
    for key, param in keys(serve).items():
        assert getattr(param, "envvar", None) == expected[key], key


def test_the_example_config_file_parses(tmp_path: Path) -> None:
    """deploy/baat.example.toml is a valid --config file (its operator path swapped for
    the example notice, which exists here)."""
    example = DOC.parents[1] / "deploy" / "baat.example.toml"
    text = example.read_text().replace(
        "/etc/baat/operator.toml", str(DOC.parents[1] / "deploy" / "operator.example.toml")
    )
    config = tmp_path / "baat.toml"
    config.write_text(text)
    ctx = serve.make_context("serve", ["--config", str(config)])
    assert ctx.params["region"] == "in" and ctx.params["migrate"] == "off"
    assert ctx.params["metrics"] == ("127.0.0.1", 9780)
    assert ctx.params["log_format"] == "json" and ctx.params["data_dir"] == Path("/var/lib/baat")
