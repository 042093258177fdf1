"""Records and their outputs: CSV columns, JSON lines, RecordWriter equals the one-shot writers."""

import csv
import io
import json

import pytest

from pyg_fer.inference.records import (
    FaceRecord,
    RecordWriter,
    class_names_of,
    to_csv,
    to_jsonl,
    write_records,
)

RECORDS = [
    FaceRecord("a.jpg", face=0, box=(1, 2, 3, 4), probs={"sad": 0.25, "happy": 0.75},
               label="happy"),
    FaceRecord("b.jpg"),  # no face: every box and probability column empty
    FaceRecord("c.jpg", face=0, box=(5, 6, 7, 8), probs={"happy": 0.5, "anger": 0.5},
               label="anger"),
    FaceRecord("d.png", error="'d.png' is not an image"),
]


def _rows(text):
    return list(csv.reader(io.StringIO(text)))


def test_class_names_are_in_first_seen_order():
    assert class_names_of(RECORDS) == ["sad", "happy", "anger"]
    header, *rows = _rows(to_csv(RECORDS))
    assert header[-4:] == ["p_sad", "p_happy", "p_anger", "error"]
    assert all(len(row) == len(header) for row in rows)
    assert rows[1] == ["b.jpg"] + [""] * 13
    assert rows[2][4:8] == ["5", "6", "7", "8"] and rows[2][-4:] == ["", "0.5", "0.5", ""]
    assert rows[3][-1] == "'d.png' is not an image" and rows[3][4:-1] == [""] * 9


def test_given_class_names_pick_and_order_the_probability_columns(tmp_path):
    names = ["happy", "anger", "sad"]
    header, first, *_ = _rows(to_csv(RECORDS, names))
    assert header[-4:] == ["p_happy", "p_anger", "p_sad", "error"]
    assert first[-4:] == ["0.75", "", "0.25", ""]
    write_records(RECORDS, tmp_path / "r.csv", class_names=names)
    assert (tmp_path / "r.csv").read_bytes().decode() == to_csv(RECORDS, names)


def test_jsonl_is_one_object_per_line_each_ending_in_a_newline():
    text = to_jsonl(RECORDS)
    assert text.endswith("}\n") and text.count("\n") == len(RECORDS)
    assert [json.loads(line)["source"] for line in text.splitlines()] == [
        "a.jpg", "b.jpg", "c.jpg", "d.png"]
    assert [r.status for r in RECORDS] == ["face", "no_face", "face", "error"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".CSV", ".JSONL"])
def test_record_writer_writes_what_write_records_writes(tmp_path, suffix):
    names = ["happy", "anger", "sad"]
    with RecordWriter(tmp_path / f"stream{suffix}", names) as writer:
        for record in RECORDS:
            writer.write(record)
    write_records(RECORDS, tmp_path / f"once{suffix}", class_names=names)
    expected = to_csv(RECORDS, names) if suffix.lower() == ".csv" else to_jsonl(RECORDS)
    assert (tmp_path / f"once{suffix}").read_bytes().decode() == expected
    assert (tmp_path / f"stream{suffix}").read_bytes().decode() == expected


def test_closing_a_record_writer_twice_is_harmless(tmp_path):
    writer = RecordWriter(tmp_path / "r.jsonl", ["happy"])
    writer.write(RECORDS[0])
    writer.close()
    writer.close()
    with pytest.raises(ValueError, match=r"'.*r.txt' must end in .jsonl or .csv"):
        RecordWriter(tmp_path / "r.txt", ["happy"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl"]
