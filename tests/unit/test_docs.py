"""Docs stay true: .env.example and the README table are what the settings classes say."""

from __future__ import annotations

from rates import envdoc
from rates.settings import ProductionSettings


def test_env_example_is_generated_from_the_code() -> None:
    assert envdoc.ENV_EXAMPLE.read_text() == envdoc.env_example(), "run `make docs`"


def test_readme_configuration_table_is_generated_from_the_code() -> None:
    readme = envdoc.README.read_text()
    assert envdoc.readme_with_table(readme) == readme, "run `make docs`"


def test_every_setting_is_documented() -> None:
    documented = {s.name for s in envdoc.settings()}
    assert documented == {name.upper() for name in ProductionSettings.model_fields}
    text = envdoc.ENV_EXAMPLE.read_text()
    assert all(f"{name}=" in text for name in documented)
