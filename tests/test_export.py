"""Export: SavedModel (TF Serving layout and signatures), TFLite, .keras, parity, segment.

The artifacts are checked by their real consumers in fresh processes:
saved_model_cli, tf.saved_model.load, the LiteRT interpreter, keras.saving.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, run_flags, run_module

CHECK_ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)


def _python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=CHECK_ENV, cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def trained(synth_dir, tmp_path_factory):
    """A model_dir with a trained P-Net (full mode: quickest)."""
    model_dir = str(tmp_path_factory.mktemp("trained"))
    result = run_module("trainers.run", *run_flags(synth_dir, model_dir, "--mode=full",
                                                   "--stages=data,pnet", "--pnet_steps=20",
                                                   "--checkpoint_every=20"))
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    export_dir = str(tmp_path_factory.mktemp("export"))
    result = run_module("export.run", f"--model_dir={trained}", f"--export_dir={export_dir}",
                        "--parity_images=4")
    assert result.returncode == 0, result.stderr[-3000:]
    return export_dir, result


def test_tf_serving_layout_and_parity_report(exported):
    export_dir, result = exported
    root = os.path.join(export_dir, "ts3")
    assert os.path.isfile(os.path.join(root, "1", "saved_model.pb"))
    assert os.path.isdir(os.path.join(root, "1", "variables"))
    assert sorted(n for n in os.listdir(root) if not n.startswith("parity")) == ["1", "artifacts_1"]
    assert sorted(os.listdir(os.path.join(root, "artifacts_1"))) == [
        "class_names.txt", "encoder.keras", "model_fp16.tflite", "model_int8.tflite",
        "model_none.tflite", "pnet.keras"]
    report = json.load(open(os.path.join(root, "parity_1.json")))
    artifacts = report["artifacts"]
    assert report["passed"] and report["num_images"] == 4
    assert artifacts["saved_model"]["argmax_agreement"] >= 0.999
    assert artifacts["tflite_none"]["argmax_agreement"] >= 0.995
    assert artifacts["tflite_fp16"]["argmax_agreement"] >= 0.99
    assert artifacts["tflite_int8"]["argmax_agreement"] >= 0.95
    assert artifacts["tflite_none"]["max_abs_logit_diff"] < 1e-3
    assert '"argmax_agreement"' in result.stdout


def test_saved_model_cli_show_lists_both_signatures(exported):
    version = os.path.join(exported[0], "ts3", "1")
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    out = subprocess.run([cli, "show", "--dir", version, "--all"], capture_output=True,
                         text=True, env=CHECK_ENV).stdout
    serving = out[out.index("signature_def['serving_default']"):]
    predict = out[out.index("signature_def['predict_images']"):out.index("signature_def['serving_default']")]
    assert "inputs['image_bytes']" in serving and "dtype: DT_STRING" in serving
    assert "outputs['classes']" in serving and "dtype: DT_INT32" in serving
    assert "outputs['probabilities']" in serving
    assert "inputs['images']" in predict and "dtype: DT_FLOAT" in predict
    assert "outputs['logits']" in predict
    assert out.count("Method name is: tensorflow/serving/predict") == 2


def test_saved_model_cli_run_on_a_real_jpeg(exported, synth_dir, tmp_path):
    version = os.path.join(exported[0], "ts3", "1")
    image_id = open(os.path.join(synth_dir, "ImageSets/Segmentation/val.txt")).readline().strip()
    jpeg = os.path.join(synth_dir, "JPEGImages", image_id + ".jpg")
    width, height = Image.open(jpeg).size
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    inputs = tmp_path / "image_bytes.npy"
    np.save(inputs, np.array([open(jpeg, "rb").read()], dtype=object), allow_pickle=True)
    result = subprocess.run(
        [cli, "run", "--dir", version, "--tag_set", "serve", "--signature_def", "serving_default",
         "--inputs", f"image_bytes={inputs}", "--outdir", str(tmp_path), "--overwrite"],
        capture_output=True, text=True, env=CHECK_ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    classes = np.load(tmp_path / "classes.npy")
    assert classes.shape == (1, height, width)
    assert np.load(tmp_path / "heights.npy").tolist() == [height]


def test_signatures_in_a_fresh_process_agree_with_keras(exported, trained, synth_dir):
    version = os.path.join(exported[0], "ts3", "1")
    ids = open(os.path.join(synth_dir, "ImageSets/Segmentation/val.txt")).read().split()[:3]
    files = [os.path.join(synth_dir, "JPEGImages", i + ".jpg") for i in ids]
    code = f"""
import numpy as np, tensorflow as tf, keras, tss_keras
files = {files!r}
loaded = tf.saved_model.load({version!r})
serve, predict = loaded.signatures["serving_default"], loaded.signatures["predict_images"]
pnet = keras.saving.load_model({os.path.join(trained, 'pnet', 'pnet.keras')!r}, safe_mode=True)
data = [open(f, "rb").read() for f in files]
out = serve(image_bytes=tf.constant(data))
for i, raw in enumerate(data):
    image = tf.cast(tf.io.decode_image(raw, channels=3), tf.float32)
    h, w = int(image.shape[0]), int(image.shape[1])
    assert int(out["heights"][i]) == h and int(out["widths"][i]) == w
    classes = out["classes"][i].numpy()
    assert (classes[h:] == 255).all() and (classes[:, w:] == 255).all()
    assert (classes[:h, :w] != 255).all()
    ref = tf.argmax(pnet(image[None])[0], -1).numpy()
    single = serve(image_bytes=tf.constant([raw]))["classes"][0].numpy()
    assert (single == ref).mean() >= 0.999, (single == ref).mean()
    logits = predict(images=image[None])["logits"][0].numpy()
    np.testing.assert_allclose(logits, pnet(image[None])[0].numpy(), atol=1e-3)
empty = serve(image_bytes=tf.constant([], tf.string))
assert empty["classes"].shape[0] == 0 and empty["heights"].shape == (0,)
try:
    serve(image_bytes=tf.constant([b"not an image"]))
    raise SystemExit("corrupt bytes were accepted")
except tf.errors.InvalidArgumentError:
    pass
print("ok")
"""
    result = _python(code)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def _two_sizes(synth_dir):
    """Two validation JPEGs of different sizes (raw bytes)."""
    from tss_keras.data.class_names import load_class_names
    from tss_keras.data.voc import load_split

    records, _ = load_split(synth_dir, "val", load_class_names(f"{synth_dir}/class_names.txt"))
    by_size = {(r.height, r.width): r.image_path for r in records}
    paths = list(by_size.values())[:2]
    assert len(paths) == 2
    return [open(p, "rb").read() for p in paths]


def test_predict_request_from_rest_json_through_the_serve_tag(exported, synth_dir, tmp_path):
    """What TF Serving does with README's REST body: a PredictRequest run by the v1 loader."""
    version = os.path.join(exported[0], "ts3", "1")
    import base64
    body = {"instances": [{"b64": base64.b64encode(raw).decode()} for raw in
                          _two_sizes(synth_dir)]}
    (tmp_path / "body.json").write_text(json.dumps(body))
    code = f"""
import base64, json, numpy as np, tensorflow as tf
from tensorflow_serving.apis import predict_pb2
body = json.load(open({str(tmp_path / 'body.json')!r}))
request = predict_pb2.PredictRequest()
request.model_spec.name = "ts3"
request.model_spec.signature_name = "serving_default"
raw = [base64.b64decode(item["b64"]) for item in body["instances"]]  # the REST layer's decoding
request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(raw, dtype=tf.string))
request = predict_pb2.PredictRequest.FromString(request.SerializeToString())  # over the wire
with tf.compat.v1.Session(graph=tf.Graph()) as session:
    meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], {version!r})
    signature = meta.signature_def[request.model_spec.signature_name]
    assert signature.method_name == "tensorflow/serving/predict", signature.method_name
    assert set(signature.inputs) == {{"image_bytes"}}
    assert set(signature.outputs) == {{"classes", "probabilities", "heights", "widths"}}
    feed = {{signature.inputs[k].name: tf.make_ndarray(v) for k, v in request.inputs.items()}}
    out = session.run({{k: v.name for k, v in signature.outputs.items()}}, feed)
assert out["classes"].dtype == np.int32 and out["probabilities"].dtype == np.float32
heights, widths = out["heights"], out["widths"]
assert out["classes"].shape == (2, heights.max(), widths.max())
assert out["probabilities"].shape == out["classes"].shape + (7,)
for i in range(2):
    image = tf.io.decode_image(raw[i])
    assert (heights[i], widths[i]) == tuple(image.shape[:2])
    inside = out["classes"][i, :heights[i], :widths[i]]
    assert (inside != 255).all() and (out["classes"][i, heights[i]:] == 255).all()
    np.testing.assert_allclose(out["probabilities"][i, :heights[i], :widths[i]].sum(-1), 1, atol=1e-4)
print("ok")
"""
    result = _python(code)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_batched_request_gives_each_image_its_single_image_classes(exported, synth_dir):
    version = os.path.join(exported[0], "ts3", "1")
    raw = _two_sizes(synth_dir)
    code = f"""
import numpy as np, tensorflow as tf
serve = tf.saved_model.load({version!r}).signatures["serving_default"]
raw = {raw!r}
both = serve(image_bytes=tf.constant(raw))
for i, data in enumerate(raw):
    alone = serve(image_bytes=tf.constant([data]))
    h, w = int(alone["heights"][0]), int(alone["widths"][0])
    np.testing.assert_array_equal(both["classes"][i, :h, :w], alone["classes"][0])
print("ok")
"""
    result = _python(code)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_saved_model_cli_scan_and_export_versions_recorded(exported):
    version = os.path.join(exported[0], "ts3", "1")
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run([cli, "scan", "--dir", version], capture_output=True, text=True,
                            env=CHECK_ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"does not contain (the default )?denylisted ops", result.stdout), result.stdout
    import tensorflow as tf
    recorded = json.load(open(os.path.join(version, "assets.extra", "exported_with.json")))
    assert recorded["tensorflow"] == tf.__version__
    report = json.load(open(os.path.join(exported[0], "ts3", "parity_1.json")))
    assert report["exported_with"]["tensorflow"] == tf.__version__


def test_tflite_runs_in_litert_and_keras_files_load_safely(exported, tmp_path):
    artifacts = os.path.join(exported[0], "ts3", "artifacts_1")
    code = f"""
import numpy as np
from ai_edge_litert.interpreter import Interpreter
for name in ("none", "fp16", "int8"):
    interpreter = Interpreter(model_path={artifacts!r} + f"/model_{{name}}.tflite")
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    assert tuple(inp["shape"]) == (1, 48, 48, 3), inp["shape"]
    interpreter.set_tensor(inp["index"], np.full(inp["shape"], 120, inp["dtype"]))
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert out.shape == (1, 48, 48, 7) and np.isfinite(out).all()
    assert (inp["dtype"] == np.uint8) == (name == "int8")
import keras, tss_keras
for name in ("pnet", "encoder"):
    model = keras.saving.load_model({artifacts!r} + f"/{{name}}.keras", safe_mode=True)
    assert model(np.zeros((1, 32, 32, 3), "float32")).shape[0] == 1
print("ok")
"""
    result = _python(code)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_tflite_agreement_recomputed_outside_the_exporter(exported, trained, synth_dir):
    """The parity report's numbers, computed again here with LiteRT and the Keras P-Net."""
    artifacts = os.path.join(exported[0], "ts3", "artifacts_1")
    ids = open(os.path.join(synth_dir, "ImageSets/Segmentation/val.txt")).read().split()[:4]
    files = [os.path.join(synth_dir, "JPEGImages", i + ".jpg") for i in ids]
    code = f"""
import json, numpy as np, tensorflow as tf, keras, tss_keras
from ai_edge_litert.interpreter import Interpreter
pnet = keras.saving.load_model({os.path.join(trained, 'pnet', 'pnet.keras')!r})
report = json.load(open({os.path.join(exported[0], 'ts3', 'parity_1.json')!r}))
for name, floor in (("none", 0.995), ("fp16", 0.99), ("int8", 0.95)):
    interpreter = Interpreter(model_path={artifacts!r} + f"/model_{{name}}.tflite")
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    agree = total = 0
    for path in {files!r}:
        # TF's JPEG decoder, as the exporter's (PIL's IDCT differs by a grey level)
        decoded = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image = tf.image.resize(tf.cast(decoded, tf.float32), (48, 48))
        reference = np.argmax(pnet(image[None]).numpy()[0], -1)
        data = image.numpy()[None]
        data = np.clip(np.round(data), 0, 255).astype(np.uint8) if inp["dtype"] == np.uint8 else data
        interpreter.set_tensor(inp["index"], data)
        interpreter.invoke()
        predicted = np.argmax(interpreter.get_tensor(out["index"])[0], -1)
        agree, total = agree + (predicted == reference).sum(), total + reference.size
    agreement = agree / total
    assert agreement >= floor, (name, agreement)
    assert abs(agreement - report["artifacts"][f"tflite_{{name}}"]["argmax_agreement"]) < 1e-6
print("ok")
"""
    result = _python(code)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


@pytest.mark.parametrize("artifact", ["1", "artifacts_1/pnet.keras", "artifacts_1/model_none.tflite"])
def test_segment_with_each_artifact_kind(exported, trained, synth_dir, tmp_path, artifact):
    import keras
    import tensorflow as tf
    import tss_keras  # noqa: F401

    model = os.path.join(exported[0], "ts3", artifact)
    images = tmp_path / "images"
    images.mkdir()
    ids = open(os.path.join(synth_dir, "ImageSets/Segmentation/val.txt")).read().split()[:2]
    for i in ids:  # lossless copies, so PIL here and TF in segment decode the same pixels
        Image.open(os.path.join(synth_dir, "JPEGImages", i + ".jpg")).save(images / f"{i}.png")
    out = tmp_path / "out"
    result = run_module("trainers.segment", f"--model={model}", f"--input={images}",
                        f"--output_dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    pnet = keras.saving.load_model(os.path.join(trained, "pnet", "pnet.keras"))
    for i in ids:
        image = Image.open(images / f"{i}.png")
        mask = Image.open(out / f"{i}.png")
        overlay = Image.open(out / f"{i}_overlay.jpg")
        assert mask.mode == "P" and mask.size == image.size
        assert overlay.size == (2 * image.size[0], image.size[1])
        pixels = np.asarray(image.convert("RGB"), np.float32)
        if artifact.endswith(".tflite"):  # the model's fixed input size, and back
            logits = pnet(tf.image.resize(pixels, (48, 48))[None])
            expected = np.argmax(tf.image.resize(logits, pixels.shape[:2])[0], -1)
            floor = 0.95
        else:
            expected = np.argmax(pnet(pixels[None])[0], -1)
            floor = 0.999
        assert (np.asarray(mask) == expected).mean() >= floor
    if artifact.endswith(".tflite"):
        assert "resized to the model's 48x48 input" in result.stdout


def test_existing_version_needs_overwrite_and_next_version_is_default(exported, trained):
    export_dir = exported[0]
    result = run_module("export.run", f"--model_dir={trained}", f"--export_dir={export_dir}",
                        "--export_version=1", "--export_formats=saved_model")
    assert result.returncode != 0
    assert "--export_version:" in result.stderr and "--overwrite" in result.stderr
    result = run_module("export.run", f"--model_dir={trained}", f"--export_dir={export_dir}",
                        "--export_formats=saved_model,keras", "--parity_images=2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert os.path.isfile(os.path.join(export_dir, "ts3", "2", "saved_model.pb"))


@pytest.mark.parametrize("old, new", [("formats", "export_formats"), ("version", "export_version")])
def test_renamed_flags_say_their_new_name(trained, tmp_path, old, new):
    result = run_module("export.run", f"--model_dir={trained}", f"--export_dir={tmp_path}",
                        f"--{old}=1")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == f"error: --{old}: renamed --{new} in this release"


def test_failed_parity_leaves_no_version(trained, tmp_path):
    export_dir = str(tmp_path / "e")
    result = run_module("export.run", f"--model_dir={trained}", f"--export_dir={export_dir}",
                        "--export_formats=tflite", "--tflite_quantization=int8",
                        "--min_tflite_int8_agreement=1.01", "--parity_images=2")
    assert result.returncode != 0
    assert "failed the parity check for ['tflite_int8']" in result.stderr
    assert os.listdir(os.path.join(export_dir, "ts3")) == []


def test_export_stage_of_the_trainer(trained, synth_dir):
    result = run_module("trainers.run", *run_flags(synth_dir, trained, "--mode=full",
                                                   "--stages=export",
                                                   "--export_formats=saved_model"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.isfile(os.path.join(trained, "export", "ts3", "1", "saved_model.pb"))
    assert "Exported version 1" in result.stdout


def test_model_dir_without_pnet(tmp_path):
    result = run_module("export.run", f"--model_dir={tmp_path}", f"--export_dir={tmp_path}/e")
    assert result.returncode != 0
    assert "no trained P-Net" in result.stderr.strip().splitlines()[-1]


def test_segment_bad_inputs(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"nope")
    result = run_module("trainers.segment", f"--model={tmp_path}/missing.keras",
                        f"--input={tmp_path}/broken.jpg", f"--output_dir={tmp_path}/o")
    assert result.returncode != 0 and "--model does not exist" in result.stderr


def test_segment_unreadable_image_is_one_line(exported, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"nope")
    model = os.path.join(exported[0], "ts3", "artifacts_1", "pnet.keras")
    result = run_module("trainers.segment", f"--model={model}", f"--input={tmp_path}/broken.jpg",
                        f"--output_dir={tmp_path}/o")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == f"error: {tmp_path}/broken.jpg: not a readable image"


def test_segment_skip_bad_writes_the_good_images_and_lists_the_bad(exported, synth_dir,
                                                                    tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "a_broken.jpg").write_bytes(b"nope")
    good = open(os.path.join(synth_dir, "ImageSets/Segmentation/val.txt")).readline().strip()
    os.link(os.path.join(synth_dir, "JPEGImages", good + ".jpg"), images / "b_good.jpg")
    model = os.path.join(exported[0], "ts3", "artifacts_1", "pnet.keras")
    args = [f"--model={model}", f"--input={images}", f"--output_dir={tmp_path}/o"]
    stopped = run_module("trainers.segment", *args)
    assert stopped.returncode != 0 and not os.path.exists(tmp_path / "o" / "b_good.png")
    result = run_module("trainers.segment", *args, "--skip_bad")
    assert result.returncode == 0, result.stderr[-2000:]
    assert os.path.isfile(tmp_path / "o" / "b_good.png")
    assert f"skipped {images}/a_broken.jpg: not a readable image" in result.stdout


def test_tflite_only_export_does_not_overwrite_the_previous_artifacts(trained, tmp_path):
    export_dir = str(tmp_path / "e")
    for _ in range(2):
        result = run_module("export.run", f"--model_dir={trained}", f"--export_dir={export_dir}",
                            "--export_formats=tflite", "--tflite_quantization=none",
                            "--parity_images=1")
        assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(os.listdir(os.path.join(export_dir, "ts3"))) == [
        "artifacts_1", "artifacts_2", "parity_1.json", "parity_2.json"]
