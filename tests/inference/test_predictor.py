"""Predictor: preprocessing from the checkpoint, every input kind, boxes, batching, bad files."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from pyg_fer.data import build_transform
from pyg_fer.engine import load_model
from pyg_fer.inference import (
    FaceRecord,
    FaceTransform,
    Predictor,
    RecordWriter,
    to_csv,
    to_dicts,
    write_records,
)

from .conftest import ASTRONAUT_FACE, CLASSES, centre_in, iou, tiny_model


def _probs(model, tensor):
    with torch.no_grad():
        return model(tensor[None]).softmax(1)[0]


def test_preprocessing_comes_from_the_checkpoint(checkpoint):
    pred = Predictor.from_checkpoint(checkpoint, device="cpu", detector="none")
    assert pred.img_size == 16 and pred.class_names == CLASSES
    assert pred.mean == pytest.approx([0.45, 0.5, 0.55]) and pred.std == pytest.approx(
        [0.2, 0.25, 0.3])
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 30, 3), np.uint8))
    (rec,) = pred.predict(img)
    model = load_model(checkpoint)
    tf = build_transform(False, img_size=16, mean=[0.45, 0.5, 0.55], std=[0.2, 0.25, 0.3])
    expected = _probs(model, tf(img))
    assert list(rec.probs) == CLASSES
    assert list(rec.probs.values()) == pytest.approx(expected.tolist(), abs=1e-6)
    assert rec.label == CLASSES[int(expected.argmax())] and rec.box == (0, 0, 30, 40)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-6), (torch.bfloat16, 0.05)])
def test_a_model_at_another_precision_gets_its_images_at_that_precision(checkpoint, dtype,
                                                                        tol):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 30, 3), np.uint8))
    (ref,) = Predictor(load_model(checkpoint), detector="none").predict(img)
    (rec,) = Predictor(load_model(checkpoint).to(dtype), detector="none").predict(img)
    assert list(rec.probs.values()) == pytest.approx(list(ref.probs.values()), abs=tol)


def test_explicit_preprocessing_must_agree_with_the_model(checkpoint):
    model = load_model(checkpoint)
    Predictor(model, detector="none", img_size=16, class_names=CLASSES)  # agrees: fine
    with pytest.raises(ValueError, match="img_size=32 differs"):
        Predictor(model, detector="none", img_size=32)
    with pytest.raises(ValueError, match="mean="):
        Predictor(model, detector="none", mean=(0.485, 0.456, 0.406))
    bare = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    with pytest.raises(ValueError, match="without a pyg-fer cfg pass"):
        Predictor(bare, detector="none")
    p = Predictor(bare, detector="none", img_size=8, mean=(0.5,) * 3, std=(0.5,) * 3,
                  class_names=["a", "b"])
    (rec,) = p.predict(Image.new("RGB", (8, 8)))
    assert set(rec.probs) == {"a", "b"}


def test_every_input_kind(tmp_path, checkpoint, astronaut):
    pred = Predictor.from_checkpoint(checkpoint, device="cpu")
    path = tmp_path / "astro.png"
    Image.fromarray(astronaut).save(path)
    bgr = astronaut[:, :, ::-1].copy()
    chw = torch.from_numpy(astronaut).permute(2, 0, 1)
    inputs = [str(path), path, Image.fromarray(astronaut), astronaut, chw, chw.float() / 255,
              astronaut.mean(axis=2).astype(np.uint8)]
    recs = pred.predict(inputs, channel_order="rgb")
    recs_bgr = pred.predict(bgr, channel_order="bgr")
    assert [r.source for r in recs[:2]] == [str(path), str(path)]
    assert [r.source for r in recs[2:]] == [f"<input {i}>" for i in range(2, 7)]
    for r in recs + recs_bgr:
        assert r.error is None and centre_in(r.box, ASTRONAUT_FACE), r
    assert recs_bgr[0].probs == pytest.approx(recs[3].probs)  # BGR converted, same answer
    assert recs[4].probs == pytest.approx(recs[5].probs, abs=1e-5)  # uint8 and float tensors


def test_in_memory_mistakes_raise_at_once(checkpoint, astronaut):
    pred = Predictor.from_checkpoint(checkpoint, device="cpu", detector="none")
    with pytest.raises(ValueError, match="channel_order='rgb' or 'bgr'"):
        pred.predict(astronaut)
    with pytest.raises(ValueError, match=r"\(3, 512, 512\).*transpose"):
        pred.predict(astronaut.transpose(2, 0, 1).copy(), channel_order="rgb")
    with pytest.raises(ValueError, match="values in \\[0, 1\\]"):
        pred.predict(astronaut.astype(np.float32), channel_order="rgb")
    with pytest.raises(ValueError, match="cannot predict on a int"):
        pred.predict([3])
    with pytest.raises(ValueError, match="stride"):
        pred.predict(astronaut, channel_order="rgb", stride=0)


def test_folder_expands_to_sorted_images(tmp_path, checkpoint):
    pred = Predictor.from_checkpoint(checkpoint, device="cpu", detector="none")
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for name in ("b.png", "a.jpg", "sub/c.PNG"):
        Image.new("RGB", (12, 12), (9, 99, 199)).save(tmp_path / "in" / name)
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    recs = pred.predict(tmp_path / "in")
    assert [r.source.rsplit("in/", 1)[1] for r in recs] == ["a.jpg", "b.png", "sub/c.PNG"]
    # a broken link is an unreadable input, reported in its place rather than dropped
    (tmp_path / "in" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    recs = pred.predict(tmp_path / "in")
    assert [r.source.rsplit("in/", 1)[1] for r in recs] == ["a.jpg", "b.png", "gone.png",
                                                            "sub/c.PNG"]
    assert recs[2].error is not None and "gone.png" in recs[2].error
    assert all(r.error is None for r in recs[:2] + recs[3:])
    (tmp_path / "empty").mkdir()
    (rec,) = pred.predict(tmp_path / "empty")
    assert "holds no image" in rec.error


def test_user_boxes_replace_the_detector(checkpoint, astronaut):
    pred = Predictor.from_checkpoint(checkpoint, device="cpu")
    boxes = [(10, 20, 50, 60), (300, 300, 40.4, 40)]
    recs = pred.predict(astronaut, boxes=boxes, channel_order="rgb")
    assert [r.box for r in recs] == [(10, 20, 50, 60), (300, 300, 40, 40)]
    assert [r.face for r in recs] == [0, 1] and all(r.detector_score is None for r in recs)
    img = Image.fromarray(astronaut)
    recs = pred.predict([img, img], boxes=[None, [(600, 0, 10, 10)]])
    assert centre_in(recs[0].box, ASTRONAUT_FACE)
    assert recs[1].error == "<input 1>: box (600, 0, 10, 10) lies outside the 512×512 image"
    with pytest.raises(ValueError, match="box 0 .* w, h > 0"):
        pred.predict(img, boxes=[(0, 0, 0, 5)])
    with pytest.raises(ValueError, match="one list of \\(x, y, w, h\\) per input"):
        pred.predict([img, img], boxes=[[(0, 0, 5, 5)]])
    # OpenCV's detectors return an N×4 array (an empty tuple when they find nothing)
    rows = np.array([[10, 20, 50, 60], [300, 300, 40, 40]])
    assert [r.box for r in pred.predict(img, boxes=rows)] == [(10, 20, 50, 60), (300, 300, 40, 40)]
    assert [r.box for r in pred.predict(img, boxes=list(rows))] == [(10, 20, 50, 60),
                                                                    (300, 300, 40, 40)]
    for nothing in ([], (), np.zeros((0, 4))):
        (rec,) = pred.predict(img, boxes=nothing)
        assert rec.status == "no_face", nothing


def test_in_memory_shape_errors_give_the_right_hint(checkpoint):
    pred = Predictor.from_checkpoint(checkpoint, device="cpu")
    with pytest.raises(ValueError, match=r"got \(48, 64, 3\) \(channels last\? .*permute"):
        pred.predict(torch.zeros(48, 64, 3))
    with pytest.raises(ValueError, match=r"got \(5, 25, 25\) \(a stack of N gray images"):
        pred.predict(np.zeros((5, 25, 25), np.uint8))
    (rec,) = pred.predict(torch.rand(3, 32, 32, dtype=torch.bfloat16))  # NumPy has no bf16
    assert rec.status in ("face", "no_face")


def test_crop_is_square_with_margin(checkpoint, astronaut):
    model = load_model(checkpoint)
    pred = Predictor(model, margin=0.25)
    (rec,) = pred.predict(astronaut, boxes=[(200, 100, 40, 20)], channel_order="rgb")
    crop = Image.fromarray(astronaut).crop((190, 80, 250, 140))  # side 40 * 1.5, centred
    expected = _probs(model, torch.from_numpy(pred.transform(crop)))
    assert list(rec.probs.values()) == pytest.approx(expected.tolist(), abs=1e-6)


def test_faces_are_batched_across_images(checkpoint):
    model = load_model(checkpoint)
    sizes = []
    model.register_forward_hook(lambda m, args, out: sizes.append(len(args[0])))
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 256, (20, 20, 3), np.uint8)) for _ in range(7)]
    boxes = [[(0, 0, 10, 10), (10, 10, 10, 10)]] * 7  # 14 faces
    batched = Predictor(model, batch_size=4).predict(images, boxes=boxes)
    assert sizes == [4, 4, 4, 2]
    sizes.clear()
    single = Predictor(model, batch_size=1).predict(images, boxes=boxes)
    assert sizes == [1] * 14
    assert [r.probs for r in batched] == [pytest.approx(r.probs, abs=1e-6) for r in single]
    assert [(r.source, r.face) for r in batched] == [(f"<input {i}>", j)
                                                     for i in range(7) for j in range(2)]


def _bad_inputs(folder, astronaut):
    """Each of the issue's bad inputs, named by what it is."""
    folder.mkdir()
    img = Image.fromarray(astronaut)
    img.save(folder / "full.jpg", quality=90)
    data = (folder / "full.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "zero.png").write_bytes(b"")
    (folder / "text.png").write_text("this is not a PNG")
    Image.new("RGB", (1, 1), (120, 90, 80)).save(folder / "one_pixel.png")
    gray16 = (np.asarray(img.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(gray16).save(folder / "gray16.png")
    img.convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    img.convert("RGBA").save(folder / "rgba.png")
    img.convert("L").save(folder / "gray.png")
    return folder


def test_bad_inputs_give_named_errors_or_correct_predictions(tmp_path, checkpoint, astronaut):
    folder = _bad_inputs(tmp_path / "bad", astronaut)
    with Image.open(folder / "gray16.png") as im:
        assert im.mode.startswith("I")
    with Image.open(folder / "cmyk.jpg") as im:
        assert im.mode == "CMYK"
    pred = Predictor.from_checkpoint(checkpoint, device="cpu")
    recs = {r.source.rsplit("/", 1)[1]: r for r in pred.predict(
        [folder / n for n in sorted(p.name for p in folder.iterdir())] + [folder / "gone.png"])}
    for name in ("truncated.jpg", "zero.png", "text.png", "gone.png"):
        assert recs[name].status == "error" and name in recs[name].error, recs[name]
    assert "does not exist" in recs["gone.png"].error
    assert recs["one_pixel.png"].status == "no_face"
    for name in ("full.jpg", "gray16.png", "cmyk.jpg", "rgba.png", "gray.png"):
        assert recs[name].status == "face" and iou(recs[name].box, ASTRONAUT_FACE) > 0.5, name
    # gray16 decodes to the same 8-bit pixels as gray: the same box and prediction
    assert recs["gray16.png"].box == recs["gray.png"].box
    assert recs["gray16.png"].probs == pytest.approx(recs["gray.png"].probs, abs=1e-6)


def test_composite_of_two_photos_and_a_photo_without_face(checkpoint, astronaut):
    skimage_data = pytest.importorskip("skimage.data")
    left, right = astronaut, astronaut[:, ::-1]
    canvas = np.zeros((560, 1024, 3), np.uint8)
    canvas[40:552, :512] = left  # left face lower than the right one, same row
    canvas[0:512, 512:] = right
    pred = Predictor.from_checkpoint(checkpoint, device="cpu")
    recs = pred.predict([canvas, skimage_data.coffee()], channel_order="rgb")
    assert [(r.source, r.face) for r in recs] == [("<input 0>", 0), ("<input 0>", 1),
                                                  ("<input 1>", None)]
    x, y, w, h = ASTRONAUT_FACE
    assert iou(recs[0].box, (x, y + 40, w, h)) > 0.5
    assert iou(recs[1].box, (1024 - x - w, y, w, h)) > 0.5
    assert recs[2].status == "no_face" and recs[2].probs is None and recs[2].label is None


def test_records_to_dicts_csv_jsonl(tmp_path, checkpoint, astronaut):
    pred = Predictor.from_checkpoint(checkpoint, device="cpu")
    recs = pred.predict([astronaut, np.zeros((50, 50, 3), np.uint8)], channel_order="rgb")
    recs.append(FaceRecord("x.png", error="'x.png' is not an image"))
    dicts = to_dicts(recs)
    assert dicts[0]["box"] == list(recs[0].box) and json.loads(json.dumps(dicts)) == dicts
    write_records(recs, tmp_path / "r.jsonl")
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == dicts
    write_records(recs, tmp_path / "r.csv")
    rows = (tmp_path / "r.csv").read_text().splitlines()
    assert rows[0] == ("source,frame,time,face,x,y,w,h,detector_score,label,"
                       + ",".join(f"p_{c}" for c in CLASSES) + ",error")
    assert len(rows) == 4 and rows[3].endswith("'x.png' is not an image")
    with pytest.raises(ValueError, match="must end in .jsonl or .csv"):
        write_records(recs, tmp_path / "r.txt")


def test_csv_columns_hold_their_header_s_fields():
    rec = FaceRecord("a.jpg", face=0, box=(1, 2, 3, 4), detector_score=0.9,
                     probs={"x": 0.25, "y": 0.75}, label="y")
    header, row = to_csv([rec]).splitlines()
    assert header == "source,frame,time,face,x,y,w,h,detector_score,label,p_x,p_y,error"
    assert row == "a.jpg,,,0,1,2,3,4,0.9,y,0.25,0.75,"


def test_16_bit_arrays_map_65535_to_255():
    from pyg_fer.inference.sources import _array_to_pil

    deep = np.array([[[65535, 32768, 0]]], dtype=np.uint16)
    assert np.asarray(_array_to_pil(deep, "rgb", "t")).tolist() == [[[255, 128, 0]]]


def test_record_writer_is_atomic(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text("previous\n")
    with pytest.raises(RuntimeError), RecordWriter(out, CLASSES) as w:
        w.write(FaceRecord("a.png"))
        raise RuntimeError("interrupted")
    assert out.read_text() == "previous\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "r.jsonl"]
    with RecordWriter(out, CLASSES) as w:
        w.write(FaceRecord("a.png"))
    assert json.loads(out.read_text())["source"] == "a.png"


def test_annotated_images(tmp_path, checkpoint, astronaut):
    pred = Predictor(tiny_model(), device="cpu")
    pred.predict([astronaut, astronaut], channel_order="rgb", annotate=tmp_path / "ann")
    files = sorted(p.name for p in (tmp_path / "ann").iterdir())
    assert files == ["input_0.png", "input_1.png"]
    out = np.asarray(Image.open(tmp_path / "ann" / "input_0.png")).astype(int)
    changed = np.abs(out - astronaut).sum(axis=2) > 0
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 100 and centre_in(
        (xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()), ASTRONAUT_FACE)


def test_yunet_detector_records_carry_scores_and_landmarks(checkpoint):
    from .test_detectors import FAKE_YUNET, _red_squares

    pytest.importorskip("cv2")
    pred = Predictor.from_checkpoint(checkpoint, device="cpu", detector="yunet",
                                     detector_model=FAKE_YUNET,
                                     detector_options={"score_threshold": 0.5})
    recs = pred.predict(_red_squares(128, 160, [(96, 64), (32, 32)]), channel_order="rgb")
    assert [r.box for r in recs] == [(32, 32, 32, 32), (96, 64, 32, 32)]  # reading order
    assert recs[0].landmarks == ((48.0, 48.0),) * 5 and recs[0].detector_score == 1.0
    assert to_dicts(recs)[0]["landmarks"] == [[48.0, 48.0]] * 5


@pytest.mark.parametrize("size, mode", [(224, "RGB"), (48, "L"), (37, "RGBA")])
def test_face_transform_is_the_evaluation_transform_bit_for_bit(astronaut, size, mode):
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    img = Image.fromarray(astronaut).crop((150, 40, 330, 220)).convert(mode)
    got = FaceTransform(size, mean, std)(img)
    want = build_transform(False, img_size=size, mean=mean, std=std)(img).numpy()
    assert got.dtype == np.float32 and got.shape == (3, size, size)
    assert np.array_equal(got, want)
