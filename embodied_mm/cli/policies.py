"""``embodied-mm policies``: list the named policy recipes."""

from __future__ import annotations

import typer

from embodied_mm.cli.app import app


@app.command("policies")
def list_policies(
    params: bool = typer.Option(False, help="Also build each tiny recipe and count parameters."),
) -> None:
    """List the policy recipes (vla-discrete, vla-chunk, vla-flow; vlm-<family>-<head> on a
    pretrained vision-language model) and their sizes."""
    from embodied_mm.policies.recipes import RECIPES, SIZES, make_policy

    for name in RECIPES:
        recipe = RECIPES.get(name)
        line = (
            f"{name:20s} head={recipe.head:9s} sizes={','.join(SIZES)}  base={recipe.base_backbone}"
        )
        if params:
            line += f"  tiny_params={make_policy(name, device='cpu').num_parameters():,}"
        typer.echo(line)
        typer.echo(f"{'':20s} {recipe.description}")
