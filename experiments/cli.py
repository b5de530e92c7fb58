import click


@click.group()
def main():
    """tfcf: counterfactual interventions inside deep generative models."""
