import pytest

from tss_keras.data.class_names import VOC_CLASS_NAMES, load_class_names, resolve_class
from tss_keras.errors import DataError


def test_default_is_voc_21():
    names = load_class_names()
    assert len(names) == 21 and names[0] == "background" and names[15] == "person"
    assert names == VOC_CLASS_NAMES


def test_file_order_is_class_id(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("bg\nzebra\napple\n")
    assert load_class_names(str(path)) == ("bg", "zebra", "apple")


def test_labelme_class_names_load_as_is(tmp_path):
    path = tmp_path / "class_names.txt"
    path.write_text("__ignore__\n_background_\ncat\ndog\n")
    assert load_class_names(str(path)) == ("_background_", "cat", "dog")


def test_duplicate_and_missing_files_name_the_file(tmp_path):
    path = tmp_path / "dup.txt"
    path.write_text("bg\ncat\ncat\n")
    with pytest.raises(DataError, match="dup.txt.*duplicate"):
        load_class_names(str(path))
    with pytest.raises(DataError, match="nope.txt"):
        load_class_names(str(tmp_path / "nope.txt"))


def test_resolve_names_and_ids():
    assert resolve_class("cat", VOC_CLASS_NAMES, "x") == 8
    assert resolve_class("8", VOC_CLASS_NAMES, "x") == 8
    with pytest.raises(DataError, match="--flag: unknown class 'unicorn'"):
        resolve_class("unicorn", VOC_CLASS_NAMES, "--flag")
    with pytest.raises(DataError, match="unknown class '21'"):
        resolve_class("21", VOC_CLASS_NAMES, "--flag")
