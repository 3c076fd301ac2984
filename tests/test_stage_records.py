"""Stage records round-trip through Parquet with their derived schemas; writes are atomic."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.parquet_io import count_records, read_records, write_records
from tasks.records import STAGE_RECORDS, ChatMessage, ProblemRecord, SFTRecord, arrow_schema


def test_every_stage_record_has_an_arrow_schema_with_lineage_metadata():
    for name, record in STAGE_RECORDS.items():
        schema = arrow_schema(record)
        assert schema.metadata[b"record"] == record.__name__.encode(), name
        assert len(schema) == len(record.model_fields)


def test_sft_messages_are_a_list_of_role_content_structs(tmp_path: Path):
    row = SFTRecord(id="a", messages=[ChatMessage(role="user", content="q"), ChatMessage(role="assistant", content="s")],
                    source="demo", teacher_model="m", prompt_versions_json="[]", reference_answer="1")
    path = write_records([row], SFTRecord, tmp_path / "sft.parquet")
    messages_type = pq.read_schema(path).field("messages").type
    assert pa.types.is_list(messages_type)
    assert [(f.name, f.type) for f in messages_type.value_type] == [("role", pa.string()), ("content", pa.string())]
    assert read_records(path, SFTRecord) == [row]


def test_reading_a_file_of_another_record_type_names_the_fix(tmp_path: Path):
    path = write_records([ProblemRecord(id="1", problem="p", answer="a")], ProblemRecord, tmp_path / "problems.parquet")
    with pytest.raises(ValueError, match="missing columns: .*teacher_model.*delete it"):
        read_records(path, SFTRecord)
    with pytest.raises(ValueError, match="not a file of SFTRecord rows"):
        count_records(path, SFTRecord)  # from the footer alone
    assert count_records(path, ProblemRecord) == 1
    (tmp_path / "notes.parquet").write_text("not parquet")
    with pytest.raises(ValueError, match="not a Parquet file"):
        count_records(tmp_path / "notes.parquet", SFTRecord)


def test_failed_write_leaves_previous_file_and_no_temp_files(tmp_path: Path):
    target = tmp_path / "problems.parquet"
    write_records([ProblemRecord(id="1", problem="p", answer="a")], ProblemRecord, target)
    with pytest.raises(TypeError):
        write_records([ProblemRecord(id="2", problem="p", answer="a"), "not a record"], ProblemRecord, target)  # type: ignore[list-item]
    assert [r.id for r in read_records(target, ProblemRecord)] == ["1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["problems.parquet"]
