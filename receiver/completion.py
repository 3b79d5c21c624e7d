"""``remedy completion bash|zsh``: shell completion written from the CLI's own parser.

Commands, their options, and the values an option takes (states, outcomes,
output formats) come from the parser and the same vocabularies the commands
check, so completion never offers what the command would refuse.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterable, Mapping, Sequence

# Options whose value is a file: the shell's own file completion.
_FILE_OPTIONS = ("--config", "--alert", "--alertmanager")


def script(parser: argparse.ArgumentParser, shell: str, values: Mapping[str, Sequence[str]]) -> str:
    """The completion script for ``shell``; ``values`` adds what options take beyond choices."""
    commands = _commands(parser)
    known = {**_choices([parser, *commands.values()]), **values}
    top = _options(parser)
    cases = "\n".join(
        f"    {name}) opts={shlex.quote(' '.join(_options(sub)))};"
        f" subs={shlex.quote(' '.join(_commands(sub)))} ;;"
        for name, sub in commands.items()
    )
    value_cases = "\n".join(
        f'    {option}) COMPREPLY=($(compgen -W {shlex.quote(" ".join(words))} -- "$cur"));'
        " return ;;"
        for option, words in sorted(known.items())
    )
    body = f"""\
# remedy shell completion ({shell}): source <(remedy completion {shell})
_remedy() {{
  local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}" opts="" subs=""
  if [[ $COMP_CWORD -eq 1 ]]; then
    COMPREPLY=($(compgen -W {shlex.quote(" ".join(top))} -- "$cur"))
    return
  fi
  case "$prev" in
{value_cases}
    {"|".join(_FILE_OPTIONS)}) COMPREPLY=($(compgen -f -- "$cur")); return ;;
  esac
  case "${{COMP_WORDS[1]}}" in
{cases}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$subs" -- "$cur") $(compgen -f -- "$cur"))
  fi
}}
complete -F _remedy remedy
"""
    if shell == "zsh":
        return "autoload -U +X bashcompinit && bashcompinit\n" + body
    return body


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every command and alias (argparse has no public walk of its actions)."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def _options(parser: argparse.ArgumentParser) -> list[str]:
    """A parser's commands and options: what may follow it on the line."""
    words: list[str] = list(_commands(parser))
    for action in parser._actions:
        words.extend(action.option_strings)
    return words


def _choices(parsers: Iterable[argparse.ArgumentParser]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for parser in parsers:
        for action in parser._actions:
            if action.choices and action.option_strings:
                for option in action.option_strings:
                    found[option] = [str(choice) for choice in action.choices]
    return found
