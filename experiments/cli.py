"""The `tfcf` command: one click group gathering the experiment commands.

    tfcf --help
    tfcf demo --outdir outputs/demo
"""

import importlib
import logging

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
    "sdr-fig10": "tfcf.experiments.spectral_figures:sdr_fig10",
    "sdr-fig12": "tfcf.experiments.spectral_figures:sdr_fig12",
    "stretch-fig3": "tfcf.experiments.spectral_figures:stretch_fig3",
    "stretch-fig4": "tfcf.experiments.spectral_figures:stretch_fig4",
    "reproduce": "tfcf.experiments.reproduce:reproduce",
    "train": "tfcf.experiments.train:train",
}


class _Group(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attribute = target.split(":")
        return getattr(importlib.import_module(module), attribute)


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
