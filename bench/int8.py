"""Int8 against float32 ONNX on the real photos: accuracy, agreement, forward throughput.

    python -m bench.int8 --photos ../shared/photos

The int8 graph (``runtime="onnx-int8"``) is calibrated on a fixed subset of the photos folder,
picked as the service picks from ``PAWDEX_CALIBRATION_DIR`` (``ml.quantize.calibration_photos``),
and evaluated on all labelled photos, which include the calibration ones, and on the held-out
ones alone. Accuracy as ``bench.study_default`` counts it: top-1 / top-5 over the dog photos
(a top-1 breed only when the photo is also called a dog), dog / not-dog over all photos.

Throughput: the forward alone (no decoding, no decision) on one batch of 8 real photos: the
float graph with a dynamic batch axis (before issue 13), the float graph fixed at 8 (``onnx``)
and int8, interleaved rounds, median img/s and median per-round ratio to the dynamic graph;
the whole measurement is repeated (``--repeats``), since the machine is shared.

The decision rule of issue 13: ``auto`` may pick int8 only if its top-1 on all labelled photos
is within 1 point of the float graph's and its dog / not-dog accuracy within 0.5 point.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import torch

from bench.study_default import (
    Labels,
    breed_probs,
    interleaved_rates,
    mcnemar,
    open_rgb,
    predicted_dog,
    read_photos,
    score,
    top1_hits,
)
from pawdex.ml.classifier import BreedClassifier
from pawdex.ml.quantize import CALIBRATION_PHOTOS, calibration_photos
from pawdex.ml.registry import CLASSIFIERS, load_classifier
from pawdex.ml.runtime import Forward, export_onnx, graph_path, onnx_forward
from pawdex.model_names import DEFAULT_MODEL

MAX_TOP1_DROP = 0.01
MAX_SPECIES_DROP = 0.005
EPS = 1e-6  # a drop of exactly one point (float32 fractions) is within one point


@dataclass(frozen=True)
class Accuracy:
    photos: int
    top1: float
    top5: float
    species: float


def accuracy(labels: Labels, logits: torch.Tensor) -> Accuracy:
    top1, top5, species = score(labels, breed_probs(logits), predicted_dog(logits))
    return Accuracy(len(labels.is_dog), top1, top5, species)


def subset(labels: Labels, mask: torch.Tensor) -> Labels:
    return Labels(labels.is_dog[mask], labels.breed[mask])


def meets_rule(fp32: Accuracy, int8: Accuracy) -> bool:
    return (
        fp32.top1 - int8.top1 <= MAX_TOP1_DROP + EPS
        and fp32.species - int8.species <= MAX_SPECIES_DROP + EPS
    )


def dynamic_forward(model: BreedClassifier, cache_dir: Path | None) -> Forward:
    """The float graph with a dynamic batch axis, as every graph was before issue 13."""
    path = graph_path(model.version, model.input_size, None, cache_dir)
    if not path.is_file():
        export_onnx(model._build().eval(), model.input_size, path, batch=None)
    return onnx_forward(path)


@dataclass
class Result:
    model: str
    version: str
    threads: int
    calibration_photos: int
    overlap: int  # evaluated photos that are also calibration photos
    accuracy: dict[str, Accuracy]  # "fp32 all", "int8 all", "fp32 held-out", "int8 held-out"
    same_top_breed: float
    same_species: float
    top1_gained_lost_p: tuple[int, int, float]  # int8 against fp32, paired
    throughput: list[dict[str, dict[str, float]]] = field(default_factory=list)

    def rule_met(self, part: str) -> bool:
        if f"fp32 {part}" not in self.accuracy:
            return False
        return meets_rule(self.accuracy[f"fp32 {part}"], self.accuracy[f"int8 {part}"])


def compare(
    labels: Labels, held: torch.Tensor, fp32: torch.Tensor, int8: torch.Tensor
) -> dict[str, object]:
    """Accuracy of both graphs' logits on all photos and on the held-out ones, and how often
    they agree."""
    parts = {"all": torch.ones_like(held), "held-out": held}
    logits = {"fp32": fp32, "int8": int8}
    hits = {
        name: top1_hits(labels, breed_probs(out), predicted_dog(out))
        for name, out in logits.items()
    }
    return {
        "accuracy": {
            f"{name} {part}": accuracy(subset(labels, mask), out[mask])
            for part, mask in parts.items()
            if mask.any()
            for name, out in logits.items()
        },
        "same_top_breed": float(
            (breed_probs(fp32).argmax(1) == breed_probs(int8).argmax(1)).float().mean()
        ),
        "same_species": float((predicted_dog(fp32) == predicted_dog(int8)).float().mean()),
        "top1_gained_lost_p": mcnemar(hits["int8"], hits["fp32"]),
    }


def run(args: argparse.Namespace, log: Callable[[str], None]) -> Result:
    torch.set_num_threads(args.threads)
    photos = read_photos(args.photos)
    labels = Labels.of(photos)
    calibration = calibration_photos(args.photos, args.calibration)
    calibrated = {path.resolve() for path in calibration}
    held = torch.tensor([p.path.resolve() not in calibrated for p in photos])
    log(
        f"{len(photos)} labelled photos ({int(labels.is_dog.sum())} dogs); int8 calibrated on "
        f"{len(calibration)} photos of the folder; {int(held.sum())} of the labelled held out"
    )
    fp32 = load_classifier(args.model, "cpu", "onnx", args.cache_dir)
    int8 = load_classifier(args.model, "cpu", "onnx-int8", args.cache_dir, calibration)
    fp32.load()
    int8.load()  # quantizes on first use (cached afterwards)
    images = torch.stack([fp32.preprocess(open_rgb(p.path)) for p in photos])
    result = Result(
        args.model, fp32.version, args.threads, len(calibration), len(photos) - int(held.sum()),
        **compare(labels, held, fp32.logits(images), int8.logits(images)),
    )  # fmt: skip

    batch = images[[(i * len(images)) // fp32.forward_batch for i in range(fp32.forward_batch)]]
    forwards = {
        "fp32 dynamic": dynamic_forward(fp32, args.cache_dir),
        "fp32 fixed": fp32._forward,
        "int8": int8._forward,
    }
    calls = {name: partial(forward, batch) for name, forward in forwards.items()}
    for repeat in range(args.repeats):
        log(f"throughput {repeat + 1}/{args.repeats}: {args.threads} threads, batch {len(batch)}")
        rates, ratios = interleaved_rates(calls, len(batch), args.seconds, args.rounds, log)
        result.throughput.append({"img_s": rates, "vs_dynamic": ratios})
    return result


def report(r: Result) -> str:
    gained, lost, p = r.top1_gained_lost_p
    overlap = (
        f"OVERLAP: {r.overlap} of the evaluated photos are calibration photos (see held-out)"
        if r.overlap
        else "no overlap with the evaluated photos"
    )
    lines = [
        f"model {r.model} ({r.version}), {platform.machine()}, {r.threads} threads",
        f"calibration: {r.calibration_photos} photos, evenly spread over the sorted folder; "
        + overlap,
        "",
        "| graph | photos | top-1 | top-5 | dog/not-dog |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {a.photos} | {a.top1:.3f} | {a.top5:.3f} | {a.species:.3f} |"
            for name, a in r.accuracy.items()
        ),
        "",
        f"int8 vs fp32 on all photos: same top breed {r.same_top_breed:.3f}, same dog/not-dog "
        f"{r.same_species:.3f}; top-1 +{gained}/-{lost} photos (McNemar p={p:.2f})",
        "",
        "forward alone, batch of 8, img/s (median of the rounds; ratios: median of per-round)",
        "",
        "| run | fp32 dynamic | fp32 fixed | int8 | fixed / dynamic | int8 / fixed |",
        "|---|---|---|---|---|---|",
    ]
    for i, t in enumerate(r.throughput, start=1):
        rate, x = t["img_s"], t["vs_dynamic"]
        lines.append(
            f"| {i} | {rate['fp32 dynamic']:.1f} | {rate['fp32 fixed']:.1f} | {rate['int8']:.1f} "
            f"| {x['fp32 fixed']:.2f}x | {x['int8'] / x['fp32 fixed']:.2f}x |"
        )
    met = {part: "met" if r.rule_met(part) else "NOT met" for part in ("all", "held-out")}
    lines += [
        "",
        f"decision rule (top-1 within {MAX_TOP1_DROP:.0%}, dog/not-dog within "
        f"{MAX_SPECIES_DROP:.1%} of fp32): all photos {met['all']}, held-out photos "
        f"{met['held-out']}; auto may pick int8 only when both are met: "
        + ("yes" if r.rule_met("all") and r.rule_met("held-out") else "no"),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True, help="folder with labels.csv")
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=sorted(CLASSIFIERS))
    parser.add_argument(
        "--calibration",
        type=int,
        default=CALIBRATION_PHOTOS,
        help="photos calibrated on: a fixed subset, as the service picks it",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=2.0, help="per graph and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2, help="throughput measurements")
    parser.add_argument("--cache-dir", type=Path, help="ONNX graph cache (default: the user's)")
    args = parser.parse_args(argv)
    result = run(args, partial(print, file=sys.stderr))
    print(report(result))
    print(json.dumps({**asdict(result), "rule_met_all": result.rule_met("all"),
                      "rule_met_held_out": result.rule_met("held-out")}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
