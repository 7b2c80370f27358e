"""Auto-Label on real workspaces (SQLite and PostgreSQL): train, show, apply, review, next.

The data: Fashion-MNIST trousers, bags and sneakers (``service_data``), 15 labeled per class
in split ``seed`` plus an unlabeled pool of 20 per class whose true class is in the name.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from sqlalchemy import func, select

import labelwise
from labelwise.autolabel import service
from labelwise.autolabel.store import StoredClassifier
from labelwise.db.autolabel_models import (
    AutolabelModelRow,
    AutolabelVersionRow,
    PrelabelRow,
    PrelabelRunRow,
)
from labelwise.db.models import AnnotationRow, AssetRow, LabelClassRow
from labelwise.db.workflow_models import TaskRow
from labelwise.embeddings.store import load_embeddings
from labelwise.errors import ConflictError, LabelwiseError, NotFoundError, ValidationError
from labelwise.workflow import projects
from tests.autolabel.service_data import SIZE, build, true_class, write_sources
from tests.workflow.conftest import add_users


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    return write_sources(tmp_path_factory.mktemp("al"), labeled=15, pool=20)


@pytest.fixture
def ws(workspace: labelwise.Workspace, sources) -> labelwise.Workspace:
    return build(workspace, sources)


@pytest.fixture
def trained(ws):
    service.train(ws, "fm", source_split="seed", name="clothes")
    return ws


def _count(ws, stmt) -> int:
    with ws.session() as s:
        return s.scalar(stmt)


def _model_annotations(ws) -> list[tuple[int, str, float | None, int | None]]:
    with ws.session() as s:
        return s.execute(
            select(AnnotationRow.asset_id, LabelClassRow.name, AnnotationRow.confidence,
                   AnnotationRow.prelabel_run_id)
            .join(LabelClassRow, LabelClassRow.id == AnnotationRow.class_id)
            .where(AnnotationRow.source == "model").order_by(AnnotationRow.asset_id)).all()


def _paths(ws) -> dict[int, str]:
    with ws.session() as s:
        return dict(s.execute(select(AssetRow.id, AssetRow.path)).all())


# -- train ----------------------------------------------------------------------------------
def test_train_stores_version_1_with_its_card_and_the_data_that_trained_it(trained):
    info = service.show(trained, "clothes")
    assert info["task"] == "category" and info["version"] == 1 and info["dataset"] == "fm"
    card = info["card"]
    assert card["classes"] == ["bag", "sneaker", "trouser"]  # the schema's order
    assert card["accuracy"] >= 0.9 and card["evaluation"].startswith("5-fold")
    assert len(card["confusion"]) == 3 and sum(map(sum, card["confusion"])) == 45
    t = info["trained_on"]
    assert t["split"] == "seed" and t["assets"] == 45 and t["export"] is None
    assert t["class_counts"] == {"trouser": 15, "bag": 15, "sneaker": 15}
    assert len(t["data_digest"]) == 64 and t["embedding"] == {"model": "efficientnet-lite0",
                                                             "size": SIZE}
    # under ~100 images: trained, with a warning on the card
    assert any("only 45 labeled images" in w for w in card["warnings"])
    assert (trained.path / "models/autolabel/clothes/v1/model.onnx").is_file()


def test_retraining_makes_version_2_and_records_what_changed(trained):
    with trained.session() as s:  # label five pool images: the next version learns more
        bag = s.scalar(select(LabelClassRow.id).where(LabelClassRow.name == "bag"))
        pool = [a for a, p in _paths(trained).items() if p.startswith("bag-")][:5]
        for a in pool:
            s.add(AnnotationRow(dataset_id=s.get(AssetRow, a).dataset_id,
                                asset_id=a, class_id=bag, fingerprint=f"t{a}"))
        s.commit()
    second = service.train(trained, "fm", name="clothes")  # the whole dataset this time
    assert second.version == 2
    info = service.show(trained, "clothes")
    assert [v["version"] for v in info["all_versions"]] == [1, 2]
    v1, v2 = (v["trained_on"] for v in info["all_versions"])
    assert v1["assets"] == 45 and v2["assets"] == 50 and v2["split"] is None
    assert v2["class_counts"]["bag"] == 20 and v1["data_digest"] != v2["data_digest"]
    assert service.show(trained, "clothes", version=1)["card"]["train_rows"] == 45
    assert [m["latest_version"] for m in service.list_models(trained)] == [2]


def test_multilabel_model_trains_on_a_multilabel_schema(workspace, sources):
    build(workspace, sources, multi=True)
    result = service.train(workspace, "fm", source_split="seed", name="tags")
    assert result.task == "multilabel"
    card = result.card
    assert set(card["classes"]) == {"trouser", "clothing", "bag", "sneaker"}
    assert all("threshold" in c for c in card["per_class"])
    run = service.apply(workspace, "tags", "fm")
    tags: dict[int, set[str]] = {}
    for asset, name, conf, _ in _model_annotations(workspace):
        tags.setdefault(asset, set()).add(name)
        assert 0 < conf <= 1
    paths = _paths(workspace)
    right = sum(("clothing" in names) == (true_class(paths[a]) != "bag")
                for a, names in tags.items())
    assert run.images == 60 and right >= 0.9 * len(tags)


@pytest.mark.parametrize("paths, reason", [
    (lambda p: [x for x in p if x.startswith("bag/")], "at least 2 classes"),
    (lambda p: [x for x in p if not x.startswith("bag/")] + [x for x in p
                                                               if x.startswith("bag/")][:3],
     "class 'bag' has 3 labeled examples; label 2 more"),
    (lambda p: [x for x in p if "/" not in x], "no image-level category labels"),
])
def test_train_refuses_too_little_data_and_writes_nothing(ws, paths, reason):
    all_paths = list(_paths(ws).values())
    ws.create_split("fm", "small", paths=paths(all_paths))
    with pytest.raises(ValidationError) as err:
        service.train(ws, "fm", source_split="small", name="nope", task="category")
    assert reason in str(err.value)
    assert _count(ws, select(func.count()).select_from(AutolabelModelRow)) == 0
    assert not (ws.path / "models/autolabel/nope").exists() or not any(
        (ws.path / "models/autolabel/nope").iterdir())


def test_train_refuses_bad_requests_with_the_fix(trained):
    with pytest.raises(ValidationError, match="model name"):
        service.train(trained, "fm", name="../escape")
    with pytest.raises(ValidationError, match="unknown task"):
        service.train(trained, "fm", name="x", task="segments")
    with pytest.raises(ValidationError, match="not both"):
        service.train(trained, "fm", name="x", source_split="seed", source_export=1)
    with pytest.raises(NotFoundError, match="no split 'nope'"):
        service.train(trained, "fm", name="x", source_split="nope")
    with pytest.raises(NotFoundError, match="no project export 99"):
        service.train(trained, "fm", name="x", source_export=99)
    with pytest.raises(ValidationError, match="no boxes labeled"):
        service.train(trained, "fm", name="x", task="boxes")
    with pytest.raises(ConflictError, match="is a category model"):
        service.train(trained, "fm", name="clothes", task="multilabel")


def test_a_dataset_without_embeddings_names_labelwise_embed(workspace, sources):
    workspace.import_dataset("classfolders", sources["classes"], dataset="raw")
    with pytest.raises(NotFoundError, match="labelwise embed raw"):
        service.train(workspace, "raw", name="raw-model")
    # only the unlabeled pool embedded: the labeled images still lack theirs
    workspace.import_dataset("folder", sources["pool"], dataset="raw")
    from labelwise.embeddings.pipeline import embed_dataset

    workspace.create_split("raw", "pool", paths=[
        a["path"] for a in workspace.list_assets("raw", limit=1000)["items"]
        if "/" not in a["path"]])
    embed_dataset(workspace, "raw", size=SIZE, split="pool")
    with pytest.raises(NotFoundError,
                       match="none of the 45 labeled images.*`labelwise embed raw"):
        service.train(workspace, "raw", name="raw-model", options={"size": SIZE})


def test_unknown_model_is_not_found(ws):
    for call in (lambda: service.show(ws, "ghost"), lambda: service.apply(ws, "ghost", "fm"),
                 lambda: service.export_onnx(ws, "ghost", None, ws.path / "g.onnx")):
        with pytest.raises(NotFoundError, match="no auto-label model 'ghost'"):
            call()


# -- apply ----------------------------------------------------------------------------------
def test_apply_stores_model_labels_with_confidence_and_per_image_uncertainty(trained):
    with trained.session() as s:  # a project on the dataset: its tasks get the uncertainty
        users = add_users(s, {"boss": "manager"})
        from labelwise.db.account_models import UserRow

        project = projects.create_project(s, s.get(UserRow, users["boss"]), name="p",
                                          dataset="fm")
        s.commit()
        pid = project.id
    run = service.apply(trained, "clothes", "fm")
    assert run.images == 60 and run.labels == 60 and run.skipped_labeled == 45
    assert sum(b["count"] for b in run.buckets.values()) == 60
    labels = _model_annotations(trained)
    assert len(labels) == 60 and {r for *_, r in labels} == {run.run_id}
    paths = _paths(trained)
    right = sum(true_class(paths[a]) == name for a, name, _, _ in labels)
    assert right >= 54  # >= 90% on three easy classes
    with trained.session() as s:
        pre = {p.asset_id: p for p in s.scalars(select(PrelabelRow))}
        tasks = {t.asset_id: t.uncertainty for t in s.scalars(
            select(TaskRow).where(TaskRow.project_id == pid))}
        summary = s.get(PrelabelRunRow, run.run_id).summary
    assert set(pre) == {a for a, *_ in labels}
    for asset, _, conf, _ in labels:
        p = pre[asset]
        assert p.status == "pending" and p.bucket in ("easy", "medium", "hard")
        assert p.uncertainty == pytest.approx(1 - conf, abs=1e-6)  # least confidence
        assert tasks[asset] == pytest.approx(p.uncertainty)
    assert all(tasks[a] is None for a in tasks if a not in pre)  # labeled images: no score
    assert run.tasks_updated == 60 and summary["buckets"] == run.buckets


def test_reapply_replaces_pending_model_labels_only(trained):
    first = service.apply(trained, "clothes", "fm")
    queue = service.review_queue(trained, "fm", limit=10)["items"]
    keep = queue[0]["asset_id"]
    with trained.session() as s:  # a reviewer accepts one pre-label
        s.get(PrelabelRow, (first.run_id, keep)).status = "accepted"
        s.commit()
    humans = _count(trained, select(func.count()).select_from(AnnotationRow).where(
        AnnotationRow.source == "human"))
    second = service.apply(trained, "clothes", "fm")
    assert second.replaced == 59 and second.images == 59 and second.skipped_labeled == 46
    labels = _model_annotations(trained)
    by_run = {}
    for asset, _, _, run in labels:
        by_run.setdefault(run, set()).add(asset)
    assert by_run == {first.run_id: {keep}, second.run_id: set(by_run[second.run_id])}
    assert len(by_run[second.run_id]) == 59 and keep not in by_run[second.run_id]
    assert _count(trained, select(func.count()).select_from(AnnotationRow).where(
        AnnotationRow.source == "human")) == humans
    assert _count(trained, select(func.count()).select_from(PrelabelRow).where(
        PrelabelRow.run_id == first.run_id)) == 1  # the accepted one stays


def test_apply_refuses_when_nothing_is_left_or_a_class_is_missing(trained):
    trained.create_split("fm", "seed-copy", paths=[p for p in _paths(trained).values()
                                                   if "/" in p])
    with pytest.raises(ValidationError, match="nothing to pre-label"):
        service.apply(trained, "clothes", "fm", split="seed-copy")
    with pytest.raises(ValidationError, match="unknown engine"):
        service.apply(trained, "clothes", "fm", engine="spark")
    with trained.session() as s:  # rename a class: the model predicts one the schema lacks
        s.scalar(select(LabelClassRow).where(LabelClassRow.name == "bag")).name = "handbag"
        s.commit()
    with pytest.raises(ValidationError, match="does not have: bag"):
        service.apply(trained, "clothes", "fm")
    assert _count(trained, select(func.count()).select_from(PrelabelRunRow)) == 0
    assert _model_annotations(trained) == []


# -- review ---------------------------------------------------------------------------------
def test_review_queue_is_most_uncertain_first_and_pages_without_gaps(trained):
    service.apply(trained, "clothes", "fm")
    seen, values, cursor = [], [], None
    while True:
        page = trained.review_queue("fm", limit=7, cursor=cursor)
        seen += [it["asset_id"] for it in page["items"]]
        values += [(it["uncertainty"], it["asset_id"]) for it in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 60
    assert values == sorted(values, reverse=True)
    first = trained.review_queue("fm", model="clothes", limit=1)
    assert first["items"][0]["labels"][0]["confidence"] == pytest.approx(
        1 - first["items"][0]["uncertainty"], abs=1e-6)
    assert first["run"]["model"] == "clothes" and first["run"]["version"] == 1
    with pytest.raises(ValidationError, match="unknown bucket"):
        trained.review_queue("fm", bucket="tricky")
    with pytest.raises(LabelwiseError, match="invalid cursor"):
        trained.review_queue("fm", cursor="garbage")
    with pytest.raises(NotFoundError, match="no pre-label run 999"):
        trained.review_queue("fm", run=999)


def test_rejecting_drops_the_model_labels_and_the_next_run_labels_again(trained):
    first = service.apply(trained, "clothes", "fm")
    worst = [it["asset_id"] for it in trained.review_queue("fm", limit=2)["items"]]
    out = trained.review_reject("fm", [*worst, worst[0], 10**9])
    assert out["rejected"] == 2 and out["skipped"] == [10**9]
    assert not {a for a, *_ in _model_annotations(trained)} & set(worst)
    with trained.session() as s:
        status = {p.asset_id: p.status for p in s.scalars(select(PrelabelRow))}
    assert [status[a] for a in worst] == ["rejected", "rejected"]
    assert trained.review_reject("fm", worst)["rejected"] == 0  # not pending any more
    with pytest.raises(ValidationError, match="asset ids"):
        trained.review_reject("fm", [])
    second = service.apply(trained, "clothes", "fm")  # rejected images are unlabeled again
    assert second.images == 60 and second.replaced == 58
    assert len(_model_annotations(trained)) == 60 and first.run_id != second.run_id


def test_review_queue_without_a_run_says_how_to_make_one(trained):
    with pytest.raises(NotFoundError, match="autolabel apply clothes fm"):
        trained.review_queue("fm", model="clothes")


def test_accepting_the_easy_bucket_reports_its_expected_error_rate(workspace, tmp_path):
    # 70 labels per class: enough held-out predictions to vouch for a 1% easy bucket
    build(workspace, write_sources(tmp_path / "big", labeled=70, pool=20))
    service.train(workspace, "fm", source_split="seed", name="big")
    run = service.apply(workspace, "big", "fm")
    easy = run.buckets["easy"]
    assert easy["count"] > 0 and easy["held_out_error"] <= 0.01
    preview = service.accept(workspace, "fm", bucket="easy", dry_run=True)
    assert preview["count"] == easy["count"] and preview["accepted"] == 0
    assert preview["expected_error_rate"] == pytest.approx(easy["expected_error"])
    done = service.accept(workspace, "fm", bucket="easy")
    assert done["accepted"] == easy["count"] and done["held_out_error_rate"] == pytest.approx(
        easy["held_out_error"])
    with workspace.session() as s:
        statuses = dict(s.execute(select(PrelabelRow.bucket, func.count()).where(
            PrelabelRow.status == "accepted").group_by(PrelabelRow.bucket)).all())
    assert statuses == {"easy": easy["count"]}
    assert service.accept(workspace, "fm", bucket="easy")["accepted"] == 0  # nothing left
    # accepted pre-labels count as labels: the next version learns from them
    again = service.train(workspace, "fm", name="big")
    assert again.trained_on["assets"] == 210 + easy["count"]


# -- next batch -----------------------------------------------------------------------------
def test_next_batch_skips_labeled_images_and_near_duplicates(workspace, tmp_path, sources):
    src = {k: tmp_path / k for k in sources}
    for k, folder in sources.items():
        shutil.copytree(folder, src[k])
    pool = sorted(src["pool"].iterdir())
    for i, f in enumerate(pool[:6]):  # exact copies in the pool ...
        shutil.copy(f, src["pool"] / f"{f.stem.split('-')[0]}-copy{i}.png")
    labeled = sorted((src["classes"] / "bag").iterdir())[:3]
    for i, f in enumerate(labeled):  # ... and copies of labeled images
        shutil.copy(f, src["pool"] / f"bag-oflabeled{i}.png")
    ws = build(workspace, src)
    service.train(ws, "fm", source_split="seed", name="clothes")
    out = service.next_batch(ws, "fm", budget=40, name="round-2", model="clothes")
    paths = _paths(ws)
    picked = [paths[a] for a in out["asset_ids"]]
    assert out["pool"] == 69 and out["labeled"] == 45 and len(picked) <= 40
    assert all("/" not in p for p in picked)  # never an image labeled already
    assert not any("oflabeled" in p for p in picked)
    with ws.session() as s:
        hashes = [s.get(AssetRow, a).content_hash for a in out["asset_ids"]]
    assert len(hashes) == len(set(hashes))  # never two copies of one image
    assert out["mean_uncertainty_picked"] >= out["mean_uncertainty_pool"]
    split = ws.list_assets("fm", split="round-2", limit=1000)["items"]
    assert {a["id"] for a in split} == set(out["asset_ids"])
    with pytest.raises(ConflictError, match="already has a split 'round-2'"):
        service.next_batch(ws, "fm", budget=5, name="round-2")
    diverse = service.next_batch(ws, "fm", budget="10%", name="round-3")  # no model
    assert len(diverse["asset_ids"]) == 7 and diverse["model"] is None
    with pytest.raises(ValidationError, match="larger than the pool"):
        service.next_batch(ws, "fm", budget=500, name="round-4")


# -- export ---------------------------------------------------------------------------------
def test_exported_onnx_runs_in_onnxruntime_and_matches_the_model(trained, tmp_path):
    dest = service.export_onnx(trained, "clothes", None, tmp_path / "out" / "clothes.onnx")
    _, X = load_embeddings(trained, "fm", size=SIZE)
    probs = ort.InferenceSession(str(dest)).run(None, {"embedding": X})[0]
    stored = StoredClassifier(trained.path / "models/autolabel/clothes/v1")
    np.testing.assert_allclose(probs, stored.predict_proba(X), atol=1e-6)
    assert probs.shape == (len(X), 3)
    with pytest.raises(ValidationError, match=".onnx suffix"):
        service.export_onnx(trained, "clothes", None, tmp_path / "clothes.bin")
    with pytest.raises(NotFoundError, match="no version 7"):
        service.export_onnx(trained, "clothes", 7, tmp_path / "v7.onnx")


def test_a_failed_registration_leaves_no_version_folder(trained, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(AutolabelVersionRow, "__init__", refuse)
    with pytest.raises(RuntimeError):
        service.train(trained, "fm", source_split="seed", name="clothes")
    assert sorted(p.name for p in (trained.path / "models/autolabel/clothes").iterdir()) == ["v1"]


# -- training from a frozen export ----------------------------------------------------------
def _project_with_approved(ws, approved_per_class: int) -> int:
    from labelwise.db.account_models import UserRow

    with ws.session() as s:
        users = add_users(s, {"boss": "manager"})
        project = projects.create_project(s, s.get(UserRow, users["boss"]), name="p",
                                          dataset="fm")
        s.flush()
        per_class: dict[str, int] = {}
        for task in s.scalars(select(TaskRow).where(TaskRow.project_id == project.id)
                              .order_by(TaskRow.asset_id)):
            cls = s.get(AssetRow, task.asset_id).path.split("/")[0]
            if "." not in cls and per_class.get(cls, 0) < approved_per_class:
                task.status = "approved"
                per_class[cls] = per_class.get(cls, 0) + 1
        s.commit()
        return project.id


def test_train_from_an_export_reads_its_approved_labels(ws):
    from labelwise.workflow.exports import export_project

    pid = _project_with_approved(ws, 10)
    frozen = export_project(ws, pid, "coco", approved_only=True)
    everything = export_project(ws, pid, "coco", approved_only=False)
    # labels change after the export: the model still learns the frozen ones
    with ws.session() as s:
        s.execute(AnnotationRow.__table__.delete().where(AnnotationRow.source == "human"))
        s.commit()
    result = service.train(ws, "fm", source_export=frozen.id, name="from-export")
    t = result.trained_on
    assert t["export"] == frozen.id and t["export_sha256"] == frozen.sha256
    assert t["assets"] == 30 and t["class_counts"] == {"bag": 10, "sneaker": 10, "trouser": 10}
    with pytest.raises(ValidationError, match="approved labels only"):
        service.train(ws, "fm", source_export=everything.id, name="from-all")
    other = _other_dataset(ws)
    with pytest.raises(ValidationError, match="is of another dataset"):
        service.train(ws, other, source_export=frozen.id, name="elsewhere")


def _other_dataset(ws) -> str:
    from labelwise.db.models import DatasetRow, LabelSchemaRow

    with ws.session() as s:
        schema = LabelSchemaRow(name="other")
        s.add(schema)
        s.flush()
        s.add(DatasetRow(name="other", schema_id=schema.id))
        s.commit()
    return "other"
