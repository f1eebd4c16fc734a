"""Does pooling several photos of one animal beat a single photo? Measured on the real photos.
And when does one photo's answer deserve "uncertain between A and B"?

    python -m bench.pooling [--photos ../shared/photos] [--model lite1-imagenet-dogs]

Two stand-ins for "several photos of one animal" (the set has no animal ids):
- views: each dog photo seen three ways (the photo, its mirror, a tighter and shifted crop
  with other light), as a second and third shot of the same dog would differ;
- same breed: two or three different photos of one breed (different dogs: a harder test,
  the photos share only the breed).
Rules, each over the breed probabilities of the group's photos: one photo alone (the mean
top-1 accuracy of its members), mean of probabilities over the top 5 each (what pawdex
stores and serves), mean of the full 120 probabilities, mean of log-probabilities
(geometric mean), majority vote of top-1s (ties: the most confident).

The margin tables: for each gap between a photo's top two breed probabilities, how many
photos fall below it, how often their top-1 is wrong, how often the true breed is one of the
two, and how often the top-1 is wrong above it (``PAWDEX_UNCERTAIN_MARGIN``); then the same
for the pooled breed of the same-breed groups (an animal's "uncertain between A and B").
"""

from __future__ import annotations

import argparse
import csv
import itertools
import random
from collections import Counter, defaultdict
from pathlib import Path

import torch
from PIL import Image, ImageEnhance, ImageOps

from pawdex.core.settings import Settings
from pawdex.worker.model_cache import get_classifier


def views(img: Image.Image, seed: int) -> list[Image.Image]:
    rng = random.Random(seed)
    w, h = img.size
    dx, dy = int(w * rng.uniform(0, 0.12)), int(h * rng.uniform(0, 0.12))
    crop = img.crop((dx, dy, dx + int(w * 0.85), dy + int(h * 0.85)))
    crop = ImageEnhance.Brightness(crop).enhance(rng.uniform(0.75, 1.25))
    return [img, ImageOps.mirror(img), crop]


def breed_probs(model, images: list[Image.Image]) -> torch.Tensor:
    out = []
    for start in range(0, len(images), 32):
        batch = model.preset.batch([model.prepare(i) for i in images[start : start + 32]])
        with torch.inference_mode():
            out.append(model.breed_logits(model.logits(batch)).float().softmax(dim=1))
    return torch.cat(out)


def top5_mean(p: torch.Tensor) -> torch.Tensor:
    kept = torch.zeros_like(p)
    values, index = p.topk(5, dim=1)
    kept.scatter_(1, index, values)
    return kept.mean(0)


def majority(p: torch.Tensor) -> torch.Tensor:
    """Votes per breed, ties going to the breed of the most confident photo."""
    votes = torch.bincount(p.argmax(1), minlength=p.shape[1]).float()
    votes[p[p.max(1).values.argmax()].argmax()] += 0.5
    return votes


RULES = {
    "mean of top-5 probabilities (served)": top5_mean,
    "mean of probabilities": lambda p: p.mean(0),
    "mean of log-probabilities": lambda p: p.clamp_min(1e-9).log().mean(0),
    "majority vote": lambda p: majority(p),
}


def score(groups: list[tuple[int, torch.Tensor]]) -> dict[str, float]:
    single = sum((g.argmax(1) == truth).float().mean().item() for truth, g in groups)
    result = {"one photo alone": single / len(groups)}
    for name, rule in RULES.items():
        result[name] = sum(int(rule(g).argmax().item() == truth) for truth, g in groups) / len(
            groups
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=Path, default=Path("../shared/photos"))
    parser.add_argument("--model", default="lite1-imagenet-dogs")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = get_classifier(Settings(model=args.model, device="cpu", runtime="torch"))
    model.load()
    names = {n.lower(): i for i, n in enumerate(model.class_names)}
    dogs = [
        (args.photos / row["file"], names[row["breed"].lower()])
        for row in csv.DictReader((args.photos / "labels.csv").open())
        if row["breed"].lower() in names
    ]
    images = [Image.open(path).convert("RGB") for path, _ in dogs]
    print(f"{len(dogs)} dog photos of the 120 breeds, model {args.model}")

    shots = [v for i, img in enumerate(images) for v in views(img, i)]
    p = breed_probs(model, shots).view(len(images), 3, -1)
    by_views = score([(truth, p[i]) for i, (_, truth) in enumerate(dogs)])

    singles = p[:, 0]
    by_breed = defaultdict(list)
    for i, (_, truth) in enumerate(dogs):
        by_breed[truth].append(i)
    groups = []
    for truth, members in by_breed.items():
        for size in (2, 3):
            for combo in itertools.combinations(members, size):
                groups.append((truth, singles[list(combo)]))
    by_breed_groups = score(groups)
    sizes = Counter(len(g) for _, g in groups)

    print(
        f"\n| rule | 3 views of each photo ({len(dogs)} animals) | "
        f"2-3 photos of one breed ({len(groups)} groups: {dict(sizes)}) |"
    )
    print("|---|---|---|")
    for name in by_views:
        print(f"| {name} | {by_views[name]:.3f} | {by_breed_groups[name]:.3f} |")
    print_margins(singles, torch.tensor([truth for _, truth in dogs]), "photos")
    # An animal's breed is pooled the same way (the served rule): the same margin on its top 2.
    pooled = torch.stack([top5_mean(g) for _, g in groups])
    print_margins(pooled, torch.tensor([truth for truth, _ in groups]), "pooled groups")


def print_margins(p: torch.Tensor, truth: torch.Tensor, what: str) -> None:
    top2 = p.topk(2, dim=1)
    gap = top2.values[:, 0] - top2.values[:, 1]
    wrong = top2.indices[:, 0] != truth
    in_two = (top2.indices == truth[:, None]).any(1)
    print(f"\n| margin | {what} below (of {len(p)}) | top-1 wrong below | "
          "true breed one of the two | top-1 wrong above |")  # fmt: skip
    print("|---|---|---|---|---|")
    for margin in (0.10, 0.15, 0.20):
        below = gap < margin
        n, above = int(below.sum()), ~below
        print(
            f"| {margin:.2f} | {n} | {wrong[below].float().mean().item():.0%} | "
            f"{int(in_two[below].sum())} | {wrong[above].float().mean().item():.0%} |"
        )


if __name__ == "__main__":
    main()
