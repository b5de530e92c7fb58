"""Copy a finished training run's weights, model card and last sample grid into models/weights/.

    python tools/publish_weights.py runs/vae_paper_cifar10_fashion_beta1 vae_paper_cifar10_fashion

Refuses files over 10 MB (the repository's limit per file) and runs without a MODEL_CARD.json.
Copies are written atomically; the card gains the published file names.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LIMIT = 10 * 1024 * 1024


def publish(run, name, root="models/weights"):
    """Copy the run's exported weights, card and samples to ``root/name``; returns the folder."""
    from tfcf.io import atomic_path, save_json

    run = Path(run)
    card_path = run / "MODEL_CARD.json"
    if not card_path.is_file():
        raise FileNotFoundError(f"{card_path} is missing: finish the run with tfcf train first")
    card = json.loads(card_path.read_text())
    files = [card["generator_weights"], card["samples"]]
    files += [card[key] for key in ("encoder_weights", "discriminator_weights") if key in card]
    for file in files:
        size = (run / file).stat().st_size
        if size > LIMIT:
            raise ValueError(f"{run / file} has {size / 2**20:.1f} MB, over the 10 MB limit")
    target = Path(root) / name
    target.mkdir(parents=True, exist_ok=True)
    for file in files:
        with atomic_path(target / file) as temporary:
            shutil.copyfile(run / file, temporary)
    card["published_from"] = str(run)
    save_json(target / "MODEL_CARD.json", card)
    markdown = (run / "MODEL_CARD.md").read_text() if (run / "MODEL_CARD.md").is_file() else ""
    (target / "MODEL_CARD.md").write_text(markdown)
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run")
    parser.add_argument("name")
    parser.add_argument("--root", default="models/weights")
    args = parser.parse_args(argv)
    print(publish(args.run, args.name, args.root))


if __name__ == "__main__":
    main()
