"""The pyfunc categorical trap, through a real registry: ``models:/<name>@champion`` scores like memory.

A LightGBM model fed pandas category codes scores a frame by the position of each value in that frame's
own categories, so a batch whose categories come in another order, or hold only some of the values, is
silently scored as other countries. MLflow's schema enforcement adds its own conversions on the way in.
Here a model with categorical features is trained, logged and registered in a SQLite MLflow store, the
alias ``champion`` is set, and the model loaded back through ``mlflow.pyfunc`` must give exactly the
in-memory model's probabilities whatever the category order, an unseen category or the rows of the batch.
A guard shows that the same frames encoded by category codes would score differently, so equality here
means the encoding survived. Bad input through the same registry fails with a message saying the fix.
"""

from __future__ import annotations

import os
from importlib.metadata import version

import numpy as np
import pandas as pd
import pytest

from training.errors import FeatureMismatchError, ModelSignatureError
from training.score import CHAMPION, connect, load_champion, score
from training.synthetic import COUNTRIES, make_orders
from training.train import train, valid_frame

pytestmark = pytest.mark.integration

MODEL = "holdcast_pyfunc_trap"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    import mlflow

    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    root = tmp_path_factory.mktemp("mlflow_pyfunc")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = connect(uri)
    experiment = client.create_experiment("holdcast-pyfunc", artifact_location=(root / "artifacts").as_uri())
    yield {"tracking_uri": uri, "experiment_id": experiment}
    # connect() sets the URIs process-wide; give later tests the environment they started with.
    mlflow.set_tracking_uri(saved["MLFLOW_TRACKING_URI"])
    mlflow.set_registry_uri(saved["MLFLOW_REGISTRY_URI"])
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def data():
    # Compliance holds follow two countries here, so a country scored as another one moves p_any.
    return make_orders(2500, seed=21, rare_reason=None)


@pytest.fixture(scope="module")
def trained(data):
    return train(
        data.features, data.labels, data.created_at, categorical=data.categorical, num_boost_round=120
    )


@pytest.fixture(scope="module")
def valid(data, trained) -> pd.DataFrame:
    return valid_frame(data.features, trained)


def _register(store, model, example: pd.DataFrame, name: str, *, signature: bool = True) -> str:
    """Log ``model`` as a pyfunc, register it under ``name`` and give the new version the champion alias."""
    import mlflow

    with mlflow.start_run(experiment_id=store["experiment_id"]):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=model,
            signature=model.signature() if signature else None,
            input_example=model.input_example(example) if signature else None,
            registered_model_name=name,
            pip_requirements=[f"{p}=={version(p)}" for p in ("mlflow", "lightgbm", "numpy", "pandas")],
        )
    registered = str(info.registered_model_version)
    connect(store["tracking_uri"]).set_registered_model_alias(name, CHAMPION, registered)
    return registered


@pytest.fixture(scope="module")
def champion(store, trained, valid):
    import mlflow.pyfunc

    _register(store, trained.model, valid, MODEL)
    return mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")


# --- frames that break an encoding by category codes --------------------------------------------


def _categories_in_another_order(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(
        country=frame["country"].astype(pd.CategoricalDtype([*reversed(COUNTRIES), "XX"])),
        segment=frame["segment"].astype("category"),
    )


def _one_country_only(frame: pd.DataFrame) -> pd.DataFrame:
    # A batch of one high-risk country: its only category has code 0, the code of another country.
    rows = frame[frame["country"] == "IR"]
    return rows.assign(country=rows["country"].astype("category"))


def _rows_and_columns_shuffled(frame: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    return frame.sample(frac=1.0, random_state=5)[list(rng.permutation(frame.columns))]


def _plain_objects(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype({"country": object, "segment": object})


TRANSFORMS = [_categories_in_another_order, _one_country_only, _rows_and_columns_shuffled, _plain_objects]


def _by_codes(model, frame: pd.DataFrame) -> np.ndarray:
    """p_any as a code-trusting pipeline would score it: each category by its code in this frame."""
    columns = []
    for col in model.feature_columns:
        values = frame[col]
        if col in model.vocabularies:
            codes = values.astype("category").cat.codes.to_numpy(dtype="float64")
            codes[codes < 0] = np.nan
            columns.append(codes)
        else:
            columns.append(values.to_numpy(dtype="float64", na_value=np.nan))
    return model.targets["any"].predict(np.column_stack(columns))


def _assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    got = got.loc[expected.index]
    np.testing.assert_allclose(
        got.drop(columns="top_factors").to_numpy(dtype="float64"),
        expected.drop(columns="top_factors").to_numpy(dtype="float64"),
        rtol=1e-12,
        atol=0,
    )
    assert got["top_factors"].tolist() == expected["top_factors"].tolist()


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_champion_through_the_registry_scores_like_the_model_in_memory(champion, trained, valid, transform):
    frame = transform(valid)
    expected = trained.model.predict_frame(valid).loc[frame.index]

    _assert_same(score(champion, frame), expected)


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_raw_pyfunc_predict_scores_like_memory_or_refuses_loudly(champion, trained, valid, transform):
    """Calling the loaded pyfunc directly (a notebook) goes through MLflow's own schema enforcement."""
    from mlflow.exceptions import MlflowException

    frame = transform(valid)
    expected = trained.model.predict_frame(valid).loc[frame.index]
    try:
        out = champion.predict(frame)
    except MlflowException as err:
        # MLflow refuses a pandas category column for a ``string`` input: loud, and naming the column.
        # score() casts such columns to text first (test above); nothing may score them silently.
        assert "Incompatible input types for column country" in str(err)
        assert isinstance(frame["country"].dtype, pd.CategoricalDtype)
        return
    _assert_same(out.set_axis(frame.index), expected)


def test_unseen_category_scores_like_a_missing_one_through_the_registry(champion, trained, valid):
    rows = valid.head(60)
    unseen = rows.assign(country=pd.array(["ATLANTIS"] * len(rows), dtype="string"))
    missing = rows.assign(country=pd.array([pd.NA] * len(rows), dtype="string"))

    scored = score(champion, unseen)

    _assert_same(scored, trained.model.predict_frame(missing))
    _assert_same(scored, trained.model.predict_frame(unseen))


def test_the_frames_above_would_expose_an_encoding_by_codes(trained, valid):
    """Guard: for these frames category codes differ from the training vocabulary, and so do scores."""
    model = trained.model
    right = model.predict_frame(valid, explain=False)["p_any"]
    for transform in (_categories_in_another_order, _one_country_only):
        frame = transform(valid)
        wrong = _by_codes(model, frame)
        assert np.abs(wrong - right.loc[frame.index].to_numpy()).max() > 0.01, transform.__name__


def test_the_champion_keeps_its_signature_and_encoding(champion, trained):
    schema = champion.metadata.get_input_schema()
    kinds = {spec.name: spec.type.name for spec in schema.inputs}
    assert kinds == {
        c: "string" if c in ("country", "segment") else "double" for c in trained.model.feature_columns
    }
    inner = champion.unwrap_python_model()
    assert inner.vocabularies == trained.model.vocabularies
    assert inner.vocabularies["country"] == sorted(COUNTRIES)


# --- bad input through the registry -------------------------------------------------------------


def test_a_feature_missing_at_scoring_time_is_named(champion, valid):
    with pytest.raises(FeatureMismatchError) as info:
        score(champion, valid.drop(columns=["utilisation"]))
    assert info.value.missing == ["utilisation"]
    assert "Rebuild the features with the feature code the model was trained with" in str(info.value)


def test_a_categorical_sent_as_numbers_is_refused(champion, valid):
    frame = valid.assign(country=valid["country"].factorize()[0].astype("int64"))
    with pytest.raises(
        FeatureMismatchError, match=r"country \(model expects text categories, frame has int64\)"
    ):
        score(champion, frame)


def test_a_champion_trained_on_other_features_is_refused(store, data, valid):
    old_features = data.features.drop(columns=["noise"])
    old = train(old_features, data.labels, data.created_at, categorical=data.categorical, num_boost_round=30)
    _register(store, old.model, old_features.loc[valid.index], "holdcast_old_champion")

    model, _ = load_champion("holdcast_old_champion", store["tracking_uri"])
    with pytest.raises(FeatureMismatchError, match=r"unexpected feature column\(s\) \['noise'\]") as info:
        score(model, valid)
    assert "train and promote a new model" in str(info.value)


def test_a_champion_without_signature_is_refused(store, trained, valid):
    _register(store, trained.model, valid, "holdcast_unsigned", signature=False)

    model, _ = load_champion("holdcast_unsigned", store["tracking_uri"])
    with pytest.raises(ModelSignatureError, match="logged without an input signature"):
        score(model, valid)


@pytest.mark.parametrize("explainer", ["path", "shap"])
def test_the_explainer_setting_reaches_the_registered_model(champion, trained, valid, explainer):
    rows = valid.head(60)
    served = score(champion, rows, explainer=explainer)
    in_memory = trained.model.predict_frame(rows, explainer=explainer)
    assert served["top_factors"].tolist() == in_memory["top_factors"].tolist()
    other = trained.model.predict_frame(rows, explainer="shap" if explainer == "path" else "path")
    # The two explainers differ somewhere, so equality above shows which one ran.
    assert served["top_factors"].tolist() != other["top_factors"].tolist()
