"""Classification post-processing: scores to the top-k classes.

Like pycoral's ``adapters.classify``, but over dequantized numpy scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from bredos_npu.tasks.registry import OutputShape, Task, TaskOption, require_single_input, wrong_task

if TYPE_CHECKING:
    from PIL import Image

    from bredos_npu.runtime.model import Model


class Class(NamedTuple):
    """One predicted class.

    index: position in the model's output (0-based; 1001-class ImageNet models use 0 for
    "background"). label: its name, or the index as text when there are no labels.
    score: probability in 0..1.
    """

    index: int
    label: str
    score: float


def is_score_vector(shape: tuple[int, ...]) -> bool:
    """True for an output of one score per class: exactly one axis longer than 1."""
    return sum(1 for d in shape if d > 1) == 1


def to_probabilities(scores: np.ndarray) -> np.ndarray:
    """Scores as probabilities: softmax outputs pass unchanged, logits get a softmax.

    A vector is taken as logits when any value lies outside [0, 1].
    """
    scores = scores.astype(np.float32).reshape(-1)
    if scores.size and (scores.min() < -1e-6 or scores.max() > 1 + 1e-6):
        shifted = np.exp(scores - scores.max())
        return shifted / shifted.sum()
    return scores


def top_k(probabilities: np.ndarray, k: int, labels: Sequence[str] | None = None) -> list[Class]:
    """The ``k`` highest-scoring classes, best first (ties: lower index first)."""
    k = max(0, min(k, probabilities.size))
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [
        Class(int(i), labels[i] if labels is not None else str(int(i)), float(probabilities[i]))
        for i in order
    ]


best_classes = top_k  # the option of the same name shadows the function in postprocess


# --- the classify task ----------------------------------------------------------------------

def check(model: Model) -> None:
    """Raise ModelError unless the model is one image in, one vector of class scores out."""
    require_single_input(model, "classify")
    if len(model.outputs) != 1 or not is_score_vector(model.outputs[0].shape):
        raise wrong_task(model, "classify", "an image classifier with one score per class")


def fits(outputs: Sequence[OutputShape]) -> bool:
    return len(outputs) == 1 and is_score_vector(outputs[0].shape)


def postprocess(model: Model, outputs: list[np.ndarray], size: tuple[int, int], top_k: int = 5
                ) -> list[Class]:
    """The ``top_k`` most likely classes, best first, scores as probabilities in 0..1."""
    return best_classes(to_probabilities(outputs[0]), top_k, model.labels)


def document(classes: list[Class]) -> dict[str, Any]:
    return {"classes": [{"index": c.index, "label": c.label, "score": round(c.score, 6)}
                        for c in classes]}


def csv_rows(classes: list[Class]) -> list[dict[str, Any]]:
    return [{"rank": rank, "index": c.index, "label": c.label, "score": round(c.score, 6)}
            for rank, c in enumerate(classes, 1)]


LABEL_WIDTH = 40  # longer labels are cut so the score column stays on screen


def text(classes: list[Class]) -> str:
    """One row per class, best first. Rows that would read 0.0% are left out (one line says how
    many); labels are cut at LABEL_WIDTH, then made safe for a terminal (cutting an escape in
    half would hide it); ranks are right-aligned so rows 10 and up line up with 1-9."""
    from bredos_npu.text import cut, for_terminal

    shown = [c for c in classes if round(c.score * 100, 1) > 0] or classes[:1]
    labels = [for_terminal(cut(c.label, LABEL_WIDTH)) for c in shown]
    rank_width = len(str(len(shown)))
    width = max((len(label) for label in labels), default=0)
    lines = [f"  {rank:>{rank_width}}. {label:<{width}}  {c.score * 100:5.1f}%  ({c.index})"
             for rank, (label, c) in enumerate(zip(labels, shown, strict=True), 1)]
    if len(shown) < len(classes):
        hidden = len(classes) - len(shown)
        lines.append(f"  ({hidden} more class{'es' if hidden != 1 else ''} at 0.0%)")
    return "\n".join(lines)


def draw(picture: Image.Image, classes: list[Class]) -> Image.Image:
    """A copy of the picture with the best class and its score in the top-left corner."""
    from PIL import ImageDraw

    from bredos_npu.tasks.draw import _font

    picture = picture.convert("RGB")
    if classes:
        size = max(12, round(min(picture.size) / 20))
        ImageDraw.Draw(picture).text((size // 2, size // 2), f"{classes[0].label} {classes[0].score:.0%}",
                                     fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0),
                                     font=_font(size))
    return picture


TASK = Task(
    name="classify",
    summary="Classify IMAGES and folders of images (default: a bundled sample photo).",
    description="Without a model named it uses a bundled MobileNet V2 (uint8, ImageNet). "
                "Preprocessing follows the model: EXIF orientation, RGB, resize to the input size, "
                "the input tensor's quantization.",
    check=check, fits=fits, postprocess=postprocess, result=list[Class], document=document,
    csv_fields=("rank", "index", "label", "score"), csv_rows=csv_rows, text=text, draw=draw,
    options=(TaskOption("top_k", int, 5, "How many classes to show.", minimum=1),),
    verb="classified", sample_input=True,
)
