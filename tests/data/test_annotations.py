"""Annotation parsers against small fixture files in each official format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateshift.data.annotations import FORMATS, load_annotations


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_formats_listed() -> None:
    expected = {"sthv1", "sthv2", "diving48", "epic100", "kinetics", "ucf101", "hmdb51"}
    assert expected | {"tsn_list", "list", "folder", "prepared"} == set(FORMATS)


def test_sthv1(tmp_path: Path) -> None:
    write(tmp_path / "something-something-v1-labels.csv", "Pushing something\nHolding something\n")
    write(
        tmp_path / "something-something-v1-train.csv",
        "11;Pushing something\n12;Holding something\n",
    )
    write(tmp_path / "something-something-v1-test.csv", "13\n")
    (tmp_path / "20bn-something-something-v1").mkdir()
    data = load_annotations("sthv1", tmp_path, "train")
    assert data.classes == [["Holding something", "Pushing something"]]  # alphabetical
    assert [r.labels for r in data.records] == [(1,), (0,)]
    assert data.records[0].path == tmp_path / "20bn-something-something-v1" / "11"
    assert (data.frame_template, data.frame_start) == ("{:05d}.jpg", 1)
    assert load_annotations("sthv1", tmp_path, "test").records[0].labels == ()
    write(tmp_path / "something-something-v1-validation.csv", "1;Holding something\n2;Dancing\n")
    with pytest.raises(ValueError, match=r"validation\.csv:2: label 'Dancing' is not"):
        load_annotations("sthv1", tmp_path, "validation")


def test_sthv2(tmp_path: Path) -> None:
    labels = {"Putting something on something": "1", "Holding something next to something": "0"}
    write(tmp_path / "something-something-v2-labels.json", json.dumps(labels))
    items = [
        {"id": "7", "label": "holding a cup next to a pen", "placeholders": ["a cup", "a pen"],
         "template": "Holding [something] next to [something]"},
        {"id": "8", "placeholders": [], "template": "Putting [something] on something"},
    ]  # fmt: skip
    write(tmp_path / "something-something-v2-train.json", json.dumps(items))
    (tmp_path / "20bn-something-something-v2").mkdir()
    data = load_annotations("sthv2", tmp_path, "train")
    assert data.classes == [
        ["Holding something next to something", "Putting something on something"]
    ]
    assert [r.labels for r in data.records] == [(0,), (1,)]
    assert data.records[0].path == tmp_path / "20bn-something-something-v2" / "7.webm"
    write(tmp_path / "something-something-v2-test.json", json.dumps([{"id": "9"}]))
    assert load_annotations("sthv2", tmp_path, "test").records[0].labels == ()
    bad = [items[0], {"id": "5", "template": "Juggling [something]"}]
    write(tmp_path / "something-something-v2-validation.json", json.dumps(bad))
    with pytest.raises(ValueError, match=r"validation\.json:item 1 \(id 5\): label 'Juggling"):
        load_annotations("sthv2", tmp_path, "val")


def test_diving48(tmp_path: Path) -> None:
    items = [{"vid_name": "abc_00001", "label": 1, "start_frame": 5, "end_frame": 30}]
    write(tmp_path / "annotations" / "Diving48_V2_train.json", json.dumps(items))
    vocab = [["Back", "15som", "05Twis", "FREE"], ["Forward", "25som", "NoTwis", "PIKE"]]
    write(tmp_path / "annotations" / "Diving48_vocab.json", json.dumps(vocab))
    data = load_annotations("diving48", tmp_path, "train")
    record = data.records[0]
    assert data.classes[0][1] == "Forward 25som NoTwis PIKE"
    assert (record.labels, record.start_frame, record.end_frame, record.num_frames) == (
        (1,),
        0,
        None,
        25,
    )
    assert record.path == tmp_path / "abc_00001.mp4"  # no rgb/ folder: the root
    ranged = load_annotations("diving48", tmp_path, "train", frame_range=True).records[0]
    assert (ranged.start_frame, ranged.end_frame) == (5, 30)
    write(tmp_path / "annotations" / "Diving48_V2_test.json", json.dumps([{"vid_name": "x"}]))
    with pytest.raises(ValueError, match=r"Diving48_V2_test\.json:item 0: needs"):
        load_annotations("diving48", tmp_path, "test")


def test_epic100(tmp_path: Path) -> None:
    ann = tmp_path / "epic-kitchens-100-annotations"
    head = "narration_id,participant_id,video_id,narration_timestamp,start_timestamp,"
    head += "stop_timestamp,start_frame,stop_frame,narration,verb,verb_class,noun,noun_class,"
    head += "all_nouns,all_noun_classes\n"
    rows = "P01_01_0,P01,P01_01,00:00:01.089,00:00:00.14,00:00:03.37,8,202,open door,"
    rows += "open,3,door,1,['door'],[1]\n"
    rows += 'P02_101_3,P02,P02_101,00:00:01.0,00:00:01.0,00:00:02.0,50,100,"take, cup",'
    rows += "take,0,cup,0,\"['cup']\",[0]\n"
    write(ann / "EPIC_100_train.csv", head + rows)
    write(
        ann / "EPIC_100_verb_classes.csv",
        "id,key,instances,category\n0,take,[],x\n1,put,[],x\n2,wash,[],x\n3,open,[],x\n",
    )
    write(ann / "EPIC_100_noun_classes.csv", "id,key,instances,category\n0,cup,[],x\n1,door,[],x\n")
    data = load_annotations("epic100", tmp_path, "train")
    first, second = data.records
    assert data.classes == [["take", "put", "wash", "open"], ["cup", "door"]]
    assert (first.labels, first.start_frame, first.end_frame, first.num_frames) == (
        (3, 1),
        7,
        202,
        195,
    )
    assert first.path == tmp_path / "P01" / "videos" / "P01_01.MP4"
    assert (first.frame_rate, second.frame_rate) == (60.0, 50.0)  # EPIC-55 vs EPIC-100 videos
    assert first.video_id == "P01_01_0" and data.meta["label_sets"] == ["verb", "noun"]
    (tmp_path / "P01" / "rgb_frames" / "P01_01").mkdir(parents=True)
    frames = load_annotations("epic100", tmp_path, "train").records[0]
    assert frames.path == tmp_path / "P01" / "rgb_frames" / "P01_01" and frames.frame_rate is None
    write(ann / "EPIC_100_validation.csv", head + rows.replace(",3,door,1,", ",9,door,1,"))
    with pytest.raises(ValueError, match=r"EPIC_100_validation\.csv:2: class 9/1"):
        load_annotations("epic100", tmp_path, "val")


@pytest.mark.parametrize("layout", ["class", "underscore", "flat"])
def test_kinetics_layouts(tmp_path: Path, layout: str) -> None:
    csv = "label,youtube_id,time_start,time_end,split\n"
    write(
        tmp_path / "annotations" / "train.csv",
        csv + "riding a bike,abc,10,20,train\nzumba,def,0,10,train\n",
    )
    write(tmp_path / "annotations" / "validate.csv", csv + "zumba,ghi,3,13,validate\n")
    folder = {"class": "zumba", "underscore": "zumba", "flat": ""}[layout]
    if layout == "underscore":  # the first class decides: spaces became underscores
        write(tmp_path / "train" / "riding_a_bike" / "abc_000010_000020.mp4", "")
    write(tmp_path / "train" / folder / "def_000000_000010.mp4", "")
    data = load_annotations("kinetics", tmp_path, "train")
    assert data.classes == [["riding a bike", "zumba"]]
    assert data.records[1].path == tmp_path / "train" / folder / "def_000000_000010.mp4"
    if layout == "underscore":
        assert data.records[0].path.parent.name == "riding_a_bike"
    val = load_annotations("kinetics", tmp_path, "val")
    assert val.classes == data.classes and val.records[0].labels == (1,)


def test_ucf101_and_hmdb51(tmp_path: Path) -> None:
    lists = tmp_path / "ucfTrainTestlist"
    write(lists / "classInd.txt", "1 ApplyEyeMakeup\n2 HandstandPushups\n")
    write(lists / "trainlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n")
    write(lists / "testlist01.txt", "HandstandPushups/v_HandStandPushups_g01_c01.avi\n")
    train = load_annotations("ucf101", tmp_path, "train")
    test = load_annotations("ucf101", tmp_path, "test")
    assert train.classes == [["ApplyEyeMakeup", "HandstandPushups"]]
    assert (train.records[0].labels, test.records[0].labels) == ((0,), (1,))
    assert test.records[0].path == tmp_path / "HandstandPushups" / "v_HandStandPushups_g01_c01.avi"
    write(lists / "trainlist02.txt", "ApplyEyeMakeup/v_a.avi 2\n")
    with pytest.raises(ValueError, match=r"trainlist02\.txt:1: label 2 disagrees"):
        load_annotations("ucf101", tmp_path, "train", split_id=2)

    splits = tmp_path / "testTrainMulti_7030_splits"
    write(splits / "wave_test_split1.txt", "w1.avi 1 \nw2.avi 2 \nw3.avi 0 \n")
    write(splits / "clap_test_split1.txt", "c1.avi 2 \n")
    test = load_annotations("hmdb51", tmp_path, "test")
    assert test.classes == [["clap", "wave"]]
    assert [(r.path.name, r.labels) for r in test.records] == [("c1.avi", (0,)), ("w2.avi", (1,))]
    assert [r.path.name for r in load_annotations("hmdb51", tmp_path, "train").records] == [
        "w1.avi"
    ]
    write(splits / "clap_test_split2.txt", "c1.avi 2 \nc2.avi\n")
    with pytest.raises(ValueError, match=r"clap_test_split2\.txt:2: expected"):
        load_annotations("hmdb51", tmp_path, "test", split_id=2)


def test_tsn_list(tmp_path: Path) -> None:
    write(tmp_path / "train_videofolder.txt", "a/1 30 2\nb/2 12 0\n")
    data = load_annotations("tsn_list", tmp_path, "train", frame_template="img_{:05d}.jpg")
    assert data.classes == [["0", "1", "2"]] and data.frame_template == "img_{:05d}.jpg"
    record = data.records[0]
    assert (record.path, record.labels, record.end_frame, record.num_frames) == (
        tmp_path / "a/1",
        (2,),
        30,
        30,
    )
    write(tmp_path / "names.txt", "x\ny\nz\n")
    assert load_annotations("tsn_list", tmp_path, "train", classes_file="names.txt").classes == [
        ["x", "y", "z"]
    ]
    write(tmp_path / "val.txt", "a/1 30 2\nb/2 twelve 0\n")
    with pytest.raises(ValueError, match=r"val\.txt:2: num_frames 'twelve' is not an integer"):
        load_annotations("tsn_list", tmp_path, "val")
    write(tmp_path / "test.txt", "a/1 30 2\n../../etc 12 0\n")
    with pytest.raises(ValueError, match=r"test\.txt:2: path '\.\./\.\./etc' resolves outside"):
        load_annotations("tsn_list", tmp_path, "test")
    write(tmp_path / "test.txt", "/elsewhere/x 12 0\n")
    with pytest.raises(ValueError, match="resolves outside"):
        load_annotations("tsn_list", tmp_path, "test")


def test_list_names_and_indices(tmp_path: Path) -> None:
    write(tmp_path / "train.txt", "clips/my video.mp4 walk\nclips/b.mp4 run\n")
    write(tmp_path / "val.txt", "clips/c.mp4 walk\n")
    train = load_annotations("list", tmp_path, "train")
    assert train.classes == [["run", "walk"]] and train.records[0].path.name == "my video.mp4"
    assert load_annotations("list", tmp_path, "val").records[0].labels == (1,)  # same classes
    write(tmp_path / "test.csv", "path,label\nclips/d.mp4,3\n")
    test = load_annotations("list", tmp_path, "test")
    assert test.records[0].labels == (3,) and len(test.classes[0]) == 4
    write(tmp_path / "val.txt", "just-a-path\n")
    with pytest.raises(ValueError, match=r"val\.txt:1: expected 'path label'"):
        load_annotations("list", tmp_path, "val")


def test_folder(tmp_path: Path) -> None:
    write(tmp_path / "train" / "b_cls" / "_x.mp4", "")  # a YouTube id may start with "_"
    write(tmp_path / "train" / "a_cls" / "y.webm", "")
    (tmp_path / "val" / "a_cls" / "z").mkdir(parents=True)  # a frame folder
    write(tmp_path / "train" / "a_cls" / "notes.txt", "")
    train = load_annotations("folder", tmp_path, "train")
    assert train.classes == [["a_cls", "b_cls"]]
    assert [(r.path.name, r.labels) for r in train.records] == [("y.webm", (0,)), ("_x.mp4", (1,))]
    val = load_annotations("folder", tmp_path, "validation")
    assert val.records[0].path == tmp_path / "val" / "a_cls" / "z"
    (tmp_path / "val" / "c_cls").mkdir()
    with pytest.raises(ValueError, match="'c_cls' is not a class"):
        load_annotations("folder", tmp_path, "val")


def test_entry_point_errors(tmp_path: Path) -> None:
    write(tmp_path / "train.txt", "a.mp4 0\nb.mp4 0\n")
    write(tmp_path / "a.mp4", "")
    with pytest.raises(ValueError, match="unknown annotation format 'nope'"):
        load_annotations("nope", tmp_path)
    with pytest.raises(ValueError, match="has no option 'colour'"):
        load_annotations("list", tmp_path, colour="red")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load_annotations("list", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="val list not found"):
        load_annotations("list", tmp_path, "val")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        load_annotations("folder", tmp_path, "dev")
    kept = load_annotations("list", tmp_path, "train", drop_missing=True)
    assert [r.path.name for r in kept.records] == ["a.mp4"]
