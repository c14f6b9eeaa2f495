"""How labelloop's --help reads: defaults shown once and only when there is one to show."""

from __future__ import annotations

import argparse
import textwrap


class HelpFormatter(argparse.HelpFormatter):
    """Adds "(default: X)" to an option's help, except when there is nothing to say (no value, a
    flag that is off) or the help already says what the default is. In descriptions and epilogs,
    paragraphs are wrapped and indented lines (examples, tables) kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or "default" in text.lower() or action.default is None \
                or action.default is False or action.default == argparse.SUPPRESS:
            return text
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._VersionAction)):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.split("\n\n"):
            lines = paragraph.splitlines()
            if any(line[:1].isspace() for line in lines[1:]) or paragraph[:1].isspace():
                paragraphs.append("\n".join(indent + line for line in lines))
            else:
                paragraphs.append(textwrap.fill(" ".join(lines), width, initial_indent=indent, subsequent_indent=indent))
        return "\n\n".join(paragraphs)


def use_everywhere(parser: argparse.ArgumentParser) -> None:
    """Give the parser and each of its subcommands this formatter (whoever added them)."""
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                use_everywhere(sub)


# Shared by `labelloop run` and `labelloop start`.
TASK_TYPE_HELP = ("what a label is: a class (image-classification, text-classification), boxes (object-detection) "
                  "or a class for every pixel, a mask (semantic-segmentation)")
LABEL_ATTRIBUTE_HELP = ("name of the label key in the output manifest; semantic-segmentation: it ends in -ref "
                        "(Ground Truth's rule: the key names the mask's PNG)")
