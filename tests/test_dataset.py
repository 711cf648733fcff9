"""Annotation files in the formats users already have, and clear errors for broken ones."""

from pathlib import Path

import pytest

from reportgen.errors import InputError
from reportgen.inputs.dataset import label_values, read_dataset

CELEBA_NAMES = ("5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
                "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
                "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard "
                "Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair "
                "Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young")


def _images(folder: Path, names) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")
    return folder


def test_celeba_list_attr_parses_count_line_names_and_minus_one_values(tmp_path):
    names = CELEBA_NAMES.split()
    assert len(names) == 40
    rows = ["000001.jpg " + " ".join("1" if i % 2 else "-1" for i in range(40)),
            "000002.jpg  " + "  ".join("-1" if i % 2 else "1" for i in range(40))]
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text("2\n" + " ".join(names) + "\n" + "\n".join(rows) + "\n")
    images = _images(tmp_path / "img_align_celeba", ["000001.jpg", "000002.jpg"])
    data = read_dataset(images, path, ["Male", "Eyeglasses"])
    assert data.format == "celeba"
    assert data.paths == ["000001.jpg", "000002.jpg"]
    assert list(data.columns) == names
    assert data.columns["5_o_Clock_Shadow"] == ["0", "1"]
    assert data.columns["Arched_Eyebrows"] == ["1", "0"]
    assert label_values(data, "Male") == [0, 1]  # Male is attribute 21 (index 20, even): -1 then 1


def test_celeba_row_count_mismatch_is_reported(tmp_path):
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text("3\nA B\n1.jpg 1 -1\n2.jpg -1 1\n")
    with pytest.raises(InputError, match="line 1 says 3 rows but the file has 2"):
        read_dataset(_images(tmp_path / "i", ["1.jpg", "2.jpg"]), path)


def test_csv_with_header_and_subfolders(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("img,task,protected\nAfrican/x/0.jpg,0,1\nCaucasian/y/1.jpg,1,0\n")
    data = read_dataset(_images(tmp_path / "i", ["African/x/0.jpg", "Caucasian/y/1.jpg"]), path, ["task", "protected"])
    assert data.format == "csv"
    assert data.paths == ["African/x/0.jpg", "Caucasian/y/1.jpg"]
    assert label_values(data, "task") == [0, 1]
    assert data.columns["protected"] == ["1", "0"]


def test_unknown_column_suggests_the_close_name(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("img,task,protected\n0.jpg,0,1\n")
    with pytest.raises(InputError, match="no column 'protcted'; did you mean 'protected'"):
        read_dataset(_images(tmp_path / "i", ["0.jpg"]), path, ["task", "protcted"])


@pytest.mark.parametrize("row, message", [
    ("../secret.jpg,0", "leaves the image folder"),
    ("/etc/passwd,0", "is absolute"),
])
def test_paths_must_stay_inside_the_image_root(tmp_path, row, message):
    path = tmp_path / "a.csv"
    path.write_text(f"img,task\n{row}\n")
    with pytest.raises(InputError, match=message):
        read_dataset(_images(tmp_path / "i", []), path)


def test_missing_images_are_listed_not_fatal_unless_all_missing(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("img,task\n0.jpg,0\n1.jpg,1\n")
    data = read_dataset(_images(tmp_path / "i", ["0.jpg"]), path)
    assert data.missing == ["1.jpg"]
    with pytest.raises(InputError, match="none of the 2 images"):
        read_dataset(_images(tmp_path / "empty", []), path)


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("img\n0.jpg\n", "expected a header line"),
    ("img,task\n0.jpg,0\n0.jpg,1\n", "appears twice"),
    ("img,task\n0.jpg,0,5\n", "3 fields but the header has 2"),
])
def test_broken_annotation_files_give_one_clear_line(tmp_path, text, message):
    path = tmp_path / "a.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_dataset(_images(tmp_path / "i", ["0.jpg"]), path)


def test_non_numeric_labels_are_rejected(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("img,task\n0.jpg,cat\n")
    data = read_dataset(_images(tmp_path / "i", ["0.jpg"]), path, ["task"])
    with pytest.raises(InputError, match="labels must be class numbers"):
        label_values(data, "task")


def test_columns_given_with_their_option_name_the_option(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("img,task,Male\n0.jpg,0,1\n")
    images = _images(tmp_path / "i", ["0.jpg"])
    with pytest.raises(InputError, match=r"^--protected male: .* has no column 'male'; did you mean 'Male'\?$"):
        read_dataset(images, path, {"task": "--target", "male": "--protected"})


def test_rows_remember_their_line_for_messages(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("img,task\n\n0.jpg,0\n\n1.jpg,x\n")
    data = read_dataset(_images(tmp_path / "i", ["0.jpg", "1.jpg"]), path, ["task"])
    assert data.lines == [3, 5]
    with pytest.raises(InputError, match="line 5: column 'task' has 'x'"):
        label_values(data, "task")
