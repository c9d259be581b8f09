"""The domain suite: every generator is seeded, writes the VOC layout, and varies what it says."""

import filecmp
import json
import os

import numpy as np
import pytest
from PIL import Image

from tss_keras.data import domains
from tss_keras.data.class_names import load_class_names
from tss_keras.data.pools import build_pools, parse_strong_classes
from tss_keras.data.voc import load_split


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, files in os.walk(root) for f in files)


@pytest.mark.parametrize("domain", domains.DOMAIN_NAMES)
def test_each_domain_is_deterministic_and_writes_the_voc_layout(domain, tmp_path):
    a, b, c = (str(tmp_path / n) for n in "abc")
    for directory, seed in ((a, 1), (b, 1), (c, 2)):
        domains.generate_domain(domain, directory, num_train=6, num_val=2, seed=seed)
    files = _files(a)
    assert files == _files(b)
    _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert not mismatch and not errors
    images = [f for f in files if f.startswith("JPEGImages")]
    other = sorted(f for f in _files(c) if f.startswith("JPEGImages"))
    assert open(os.path.join(a, images[0]), "rb").read() != open(os.path.join(c, other[0]),
                                                                  "rb").read()
    summary = json.load(open(os.path.join(a, "synthetic.json")))
    names = load_class_names(os.path.join(a, "class_names.txt"))
    assert summary["strong_classes"] == list(domains.strong_classes(domain))
    assert 0 < len(summary["strong_classes"]) < len(names) - 1
    records, bad = load_split(a, "train", names, verify_images=True)  # every file is valid
    assert len(records) == 6 and not bad
    for record in records:
        mask = np.asarray(Image.open(record.mask_path))
        assert Image.open(record.mask_path).mode == "P"
        assert set(np.unique(mask)) <= set(range(len(names))) | {255}
    build_pools(records, parse_strong_classes(",".join(summary["strong_classes"]), names))


def test_domains_differ_in_what_they_claim(tmp_path):
    """Image size, aspect, object scale and count, and shared textures, per the specs."""
    sizes = {}
    for domain in ("photo", "small", "shared", "wide"):
        out = str(tmp_path / domain)
        domains.generate_domain(domain, out, num_train=12, num_val=0, seed=0)
        names = load_class_names(os.path.join(out, "class_names.txt"))
        records, _ = load_split(out, "train", names)
        spec = domains.DOMAINS[domain]
        long_sides = [max(r.height, r.width) for r in records]
        assert spec.long_side[0] - 1 <= min(long_sides) <= max(long_sides) <= spec.long_side[1] + 1
        sizes[domain] = np.median(long_sides)
        aspects = [r.width / r.height for r in records]
        if domain == "wide":
            assert all(a < 0.62 or a > 1.68 for a in aspects)
        if domain == "small":
            assert np.mean([len(r.labels) for r in records]) > 2
    assert sizes["shared"] < sizes["photo"] < sizes["small"]
    shared = domains.DOMAINS["shared"]
    weak = shared.classes[shared.num_strong:]
    strong_textures = {c.texture for c in shared.classes[:shared.num_strong]}
    assert all(c.texture in strong_textures for c in weak)  # only shape tells them apart


def test_cli_writes_every_domain(tmp_path):
    domains.main(["--domain=all", f"--out_dir={tmp_path}", "--num_train=2", "--num_val=1"])
    assert sorted(os.listdir(tmp_path)) == sorted(domains.DOMAIN_NAMES)
