from __future__ import annotations

import subprocess
import sys

import pytest

from eventfleet.cli import COMMANDS, load, main


def exit_code(argv: list[str]) -> str | int | None:
    """The code `eventfleet` exits with (argparse exits for --help, --version and refusals)."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    return stop.value.code


def test_version_names_the_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["--version"]) == 0
    assert capsys.readouterr().out.startswith("eventfleet 0.")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_component_has_a_subcommand(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    entry = load(command)
    if entry is None:  # the component has not landed yet: the placeholder says so
        assert main([command]) == 2
        assert f"eventfleet {command}: not implemented yet" in capsys.readouterr().err
    else:
        assert exit_code([command, "--help"]) == 0
        assert "usage:" in capsys.readouterr().out


def test_arguments_after_the_command_reach_the_component(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[list[str]] = []

    def fake_entry(argv: list[str]) -> int:
        seen.append(argv)
        return 7

    monkeypatch.setattr("eventfleet.cli.load", lambda _name: fake_entry)
    assert main(["consumer", "--mode", "stats", "--version"]) == 7
    assert seen == [["--mode", "stats", "--version"]]


def test_unknown_subcommand_is_refused_with_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["consumr"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'consumr'" in err
    assert "consumer" in err


def test_no_subcommand_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code([]) == 2
    assert "required: COMMAND" in capsys.readouterr().err


def test_console_script_is_installed() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "eventfleet.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    for command in COMMANDS:
        assert command in out.stdout
