"""Exceptions of the training and scoring package.

They live in a module of their own, free of heavy imports, so a DAG task can catch them without
loading LightGBM or MLflow first. Each message says what was expected and where to look.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class TrainingError(ValueError):
    """The data given to training cannot produce a model (empty window, misaligned frames, no label)."""


class FeatureMismatchError(ValueError):
    """The feature columns given do not match the columns the model was trained on.

    Attributes:
        missing: columns the model needs that the frame lacks.
        extra: columns the frame has that the model does not know (empty when extras are tolerated).
        wrong_type: column -> what the model expects and what the frame holds, for columns whose
            values cannot be read as the model's input type (numbers for a categorical, text for a number).
    """

    def __init__(
        self,
        missing: Iterable[str] = (),
        extra: Iterable[str] = (),
        *,
        wrong_type: Mapping[str, str] | None = None,
        where: str = "model",
    ):
        self.missing = sorted(missing)
        self.extra = sorted(extra)
        self.wrong_type = dict(sorted((wrong_type or {}).items()))
        parts = []
        if self.missing:
            parts.append(f"missing feature column(s) {self.missing}")
        if self.extra:
            parts.append(f"unexpected feature column(s) {self.extra}")
        if self.wrong_type:
            kinds = ", ".join(f"{c} ({kind})" for c, kind in self.wrong_type.items())
            parts.append(f"feature column(s) of the wrong type: {kinds}")
        detail = "; ".join(parts) or "no difference"
        super().__init__(
            f"features do not match the {where}'s input schema: {detail}. Rebuild the features with the "
            "feature code the model was trained with, or train and promote a new model."
        )


class ModelSignatureError(ValueError):
    """A registered model carries no input signature, so its feature columns and types are unknown."""

    def __init__(self, model_uri: str = "the model"):
        self.model_uri = model_uri
        super().__init__(
            f"{model_uri} was logged without an input signature: holdcast cannot check which feature "
            "columns and types it expects, so it will not score with it. Move the `champion` alias to a "
            "version registered by holdcast's training (it logs a signature), or train a new one."
        )


class NoChampionError(LookupError):
    """No version of the registered model carries the ``champion`` alias."""

    # The tracking URI stays out of the message: a database URI may carry a password.
    def __init__(self, model_name: str):
        self.model_name = model_name
        super().__init__(
            f"no model version carries alias 'champion' for {model_name!r}; "
            f"run the training DAG or set the alias in the MLflow UI: Models -> {model_name} -> version -> "
            "Add alias `champion`"
        )
