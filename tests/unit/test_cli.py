from __future__ import annotations

import subprocess
import sys

import pytest
from eventfleet.cli import COMPONENTS, main


def test_version_names_the_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith("eventfleet 0.")


@pytest.mark.parametrize("command", sorted(COMPONENTS))
def test_every_component_has_a_subcommand(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([command])
    assert code == 2
    assert f"eventfleet {command}: not implemented yet" in capsys.readouterr().err


def test_unknown_subcommand_is_refused_with_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["consumr"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'consumr'" in err
    assert "consumer" in err


def test_no_subcommand_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main([])
    assert stop.value.code == 2
    assert "required: COMMAND" in capsys.readouterr().err


def test_console_script_is_installed() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "eventfleet.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    for command in COMPONENTS:
        assert command in out.stdout
