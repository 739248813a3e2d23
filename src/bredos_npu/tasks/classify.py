"""Classification post-processing: scores to the top-k classes.

Like pycoral's ``adapters.classify``, but over dequantized numpy scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


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
