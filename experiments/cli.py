"""The `tfcf` command: one click group gathering the experiment commands.

    tfcf --help
    tfcf demo --outdir outputs/demo
"""

import importlib
import logging
import os
import re

import click

# name -> "module:attribute". Modules import only click at import time (TensorFlow is imported
# inside the commands), so `tfcf --help` stays fast.
COMMANDS = {
    "demo": "tfcf.experiments.demo:demo",
    "fig3b": "tfcf.experiments.modules_figures:fig3b",
    "fig4": "tfcf.experiments.modules_figures:fig4",
    "fig8": "tfcf.experiments.modules_figures:fig8",
    "fig9": "tfcf.experiments.modules_figures:fig9",
    "fig10": "tfcf.experiments.modules_figures:fig10",
    "fig11": "tfcf.experiments.modules_figures:fig11",
    "fig12": "tfcf.experiments.modules_figures:fig12",
    "draft-fig7": "tfcf.experiments.modules_figures:draft_fig7",
    "model1": "tfcf.experiments.model1:model1",
    "table2": "tfcf.experiments.table2:table2",
    "fig5": "tfcf.experiments.biggan:fig5",
    "fig6": "tfcf.experiments.biggan:fig6",
    "fig14": "tfcf.experiments.biggan:fig14",
    "fig16": "tfcf.experiments.biggan:fig16",
    "table3": "tfcf.experiments.biggan:table3",
    "sdr-fig3a": "tfcf.experiments.spectral_figures:sdr_fig3a",
    "sdr-fig4": "tfcf.experiments.spectral_figures:sdr_fig4",
    "sdr-fig5": "tfcf.experiments.spectral_figures:sdr_fig5",
    "sdr-fig6": "tfcf.experiments.spectral_figures:sdr_fig6",
    "sdr-fig7": "tfcf.experiments.spectral_figures:sdr_fig7",
    "sdr-fig8": "tfcf.experiments.spectral_figures:sdr_fig8",
    "sdr-fig11": "tfcf.experiments.spectral_figures:sdr_fig11",
    "sdr-fig10": "tfcf.experiments.spectral_figures:sdr_fig10",
    "sdr-fig12": "tfcf.experiments.spectral_figures:sdr_fig12",
    "stretch-fig3": "tfcf.experiments.spectral_figures:stretch_fig3",
    "stretch-fig4": "tfcf.experiments.spectral_figures:stretch_fig4",
    "stylegan-modules": "tfcf.experiments.mobile_stylegan:stylegan_modules",
    "reproduce": "tfcf.experiments.reproduce:reproduce",
    "train": "tfcf.experiments.train:train",
}


class CommandError(click.ClickException):
    """A command could not run on what it was given: one paragraph, exit code 2."""

    exit_code = 2


# What bad input raises inside a command (a wrong name or value, a missing or corrupt file, a
# missing package): reported as one paragraph with exit code 2. TFCF_DEBUG=1 shows the traceback.
USER_ERRORS = (ValueError, OSError, ImportError, KeyError)


def _natural(name):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _summary(command):
    """The docstring's first paragraph, whole (click would cut it at 45 characters or at "Fig.")."""
    text = (command.help or "").split("\n\n")[0]
    return " ".join(line.strip() for line in text.splitlines()).strip()


class _Group(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS, key=_natural)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        if command.short_help is None:
            command.short_help = _summary(command)
        return command

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except click.ClickException as error:
            error.exit_code = 2 if error.exit_code == 1 else error.exit_code
            raise
        except USER_ERRORS as error:
            if os.environ.get("TFCF_DEBUG"):
                raise
            message = str(error).strip() or type(error).__name__
            if isinstance(error, KeyError):
                message = f"missing key {message}"
            raise CommandError(f"{message} ({type(error).__name__}; run with TFCF_DEBUG=1 for "
                               "the traceback)") from error


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tfcf")
def main():
    """tfcf: counterfactual interventions inside deep generative models (Besserve et al.).

    One command per paper figure or table; each writes PNG figures and JSON numbers to --outdir.
    """
    _drop_retracing_warnings()


def _drop_retracing_warnings():
    """Silence TensorFlow's expected "retracing" warnings about cut models, once per process."""
    from tfcf.intervene import RetracingWarningFilter  # the library, imported lazily like commands

    logger = logging.getLogger("tensorflow")
    if not any(isinstance(existing, RetracingWarningFilter) for existing in logger.filters):
        logger.addFilter(RetracingWarningFilter())
