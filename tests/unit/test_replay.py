"""`gatewatch replay` reads logs as they come from the field: Windows-1258 files, a stray
byte of it in a UTF-8 file, a byte-order mark, a monster field. Each bad row is reported
with its number and reason and the rest of the file goes on; the summary is always
printed (tests/integration/test_replay.py plays a log into a real worker)."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pytest

from gatewatch import cli
from gatewatch.errors import ConfigError
from gatewatch.streams.codec import Decoder
from gatewatch.tools import replay
from gatewatch.tools.replay import CSV_FIELD_LIMIT, ColumnMap, ReplayReport, parse_log

NOW = 1_640_044_800_000  # 2021-12-21T00:00:00Z, a day after the logs
GATES = ("huu-nghi", "tan-thanh", "dong-dang")
MAP = ("gate_id=CuaKhau,vehicle_id=BienSo,occurred_at=ThoiGian,type=SuKien,"
       "direction=Huong,lane=Lan")
#: the command-line values are typed in NFC, as every Vietnamese keyboard writes them
TYPES = "queued=vào bãi,crossed=qua cửa"
DIRECTIONS = "export=xuất,import=nhập"
CMAP = ColumnMap.parse(MAP, TYPES, DIRECTIONS)
HEADER = b"CuaKhau,BienSo,ThoiGian,SuKien,Huong,Lan\r\n"
#: Windows-1258 bytes: "vào bãi", "xuất", "nhập", "qua cửa", "Làn 2" (tone marks are
#: combining characters in this code page, e.g. ã = a + 0xDE, ấ = â + 0xEC)
VAO_BAI, XUAT, NHAP = b"v\xe0o ba\xdei", b"xu\xe2\xect", b"nh\xe2\xf2p"
QUA_CUA, LAN_2 = b"qua c\xfd\xd2a", b"L\xe0n 2"
CP1258_ROWS = [
    b"huu-nghi,12C-04567,2021-12-20 07:02:11," + VAO_BAI + b"," + XUAT + b"," + LAN_2,
    b"huu-nghi,29\xd0-12345,2021-12-20 07:05:40," + VAO_BAI + b"," + NHAP + b",",
    b"tan-thanh,12A-55555,2021-12-20 07:07:15," + VAO_BAI + b"," + XUAT + b",",
    b"huu-nghi,12C-04567,2021-12-20 09:40:00," + QUA_CUA + b"," + XUAT + b"," + LAN_2,
]


def write(path: Path, header: bytes, rows: list[bytes]) -> Path:
    path.write_bytes(header + b"".join(r + b"\r\n" for r in rows))
    return path


def parse(path: Path, encoding: str = "utf-8", max_field_bytes: int = 65536,
          cmap: ColumnMap = CMAP) -> tuple[list[dict[str, str]], ReplayReport]:
    good, report = parse_log(path, cmap, Decoder(GATES, max_field_bytes), NOW,
                             encoding=encoding, max_field_bytes=max_field_bytes)
    return [orjson.loads(g[1]) for g in good], report


def reasons(report: ReplayReport) -> list[tuple[int, str]]:
    return [(e.row, e.reason) for e in report.errors]


def test_a_windows_1258_log_is_read_with_encoding_cp1258(tmp_path):
    docs, report = parse(write(tmp_path / "log.csv", HEADER, CP1258_ROWS), "cp1258")
    assert report.summary() == "4 rows: 4 good, 0 rejected"
    assert [(d["vehicle_id"], d["type"], d["direction"], d.get("lane")) for d in docs] == [
        ("12C-04567", "queued", "export", "Làn 2"),
        ("29Đ-12345", "queued", "import", None),
        ("12A-55555", "queued", "export", None),
        ("12C-04567", "crossed", "export", "Làn 2")]
    # composed (NFC) like the same text in a UTF-8 file: one code point per letter
    assert docs[0]["lane"].encode() == "Làn 2".encode() and len(docs[1]["vehicle_id"]) == 9


def test_the_same_file_read_as_utf8_reports_its_bad_rows_and_keeps_the_good_ones(tmp_path):
    rows = [b"huu-nghi,12C-00001,2021-12-20 06:00:00,queued,export,",  # plain ASCII: fine
            *CP1258_ROWS,
            b"huu-nghi,12C-00002,2021-12-20 06:30:00,queued,import,"]
    cmap = ColumnMap.parse(MAP)  # contract values, as the ASCII rows use
    docs, report = parse(write(tmp_path / "log.csv", HEADER, rows), cmap=cmap)
    assert reasons(report) == [(2, "bad_encoding"), (3, "bad_encoding"), (4, "bad_encoding"),
                               (5, "bad_encoding")]
    assert "column 'SuKien': byte 0xe0 is not valid utf-8; a Windows file? try --encoding " \
           "cp1258" in report.errors[0].detail
    assert "column 'BienSo': byte 0xd0" in report.errors[1].detail  # the first bad field
    assert [d["vehicle_id"] for d in docs] == ["12C-00001", "12C-00002"]
    assert report.summary() == "6 rows: 2 good, 4 rejected (bad_encoding 4)"


def test_a_200_kb_field_is_reported_as_its_row(tmp_path):
    header = b"gate_id,vehicle_id,occurred_at,type,note\n"
    rows = [b"huu-nghi,A,2021-12-20 07:00:00,queued,",
            b'huu-nghi,B,2021-12-20 07:01:00,queued,"' + b"x" * 200_000 + b'"',
            b"huu-nghi,C,2021-12-20 07:02:00,queued,ok"]
    before = csv.field_size_limit()
    docs, report = parse(write(tmp_path / "log.csv", header, rows), cmap=ColumnMap())
    assert reasons(report) == [(2, "field_too_large")]
    assert report.errors[0].detail == ("column 'note': 200000 bytes > 65536 "
                                       "(GATEWATCH_MAX_MESSAGE_BYTES)")
    assert [d["vehicle_id"] for d in docs] == ["A", "C"]
    assert csv.field_size_limit() == before  # the process-wide limit is put back


def test_a_field_past_the_csv_limit_is_reported_and_the_next_line_read(tmp_path, monkeypatch):
    monkeypatch.setattr(replay, "CSV_FIELD_LIMIT", 1000)  # stands for the 16 MiB bound
    assert CSV_FIELD_LIMIT == 16 * 1024 * 1024
    header = b"gate_id,vehicle_id,occurred_at,type\n"
    rows = [b"huu-nghi,A,2021-12-20 07:00:00,queued",
            b"huu-nghi," + b"y" * 5000 + b",2021-12-20 07:01:00,queued",
            b"huu-nghi,C,2021-12-20 07:02:00,queued"]
    docs, report = parse(write(tmp_path / "log.csv", header, rows), cmap=ColumnMap())
    assert reasons(report) == [(2, "field_too_large")]
    assert "field larger than field limit" in report.errors[0].detail
    assert [d["vehicle_id"] for d in docs] == ["A", "C"]


def test_a_byte_order_mark_is_skipped(tmp_path):
    path = write(tmp_path / "excel.csv", b"\xef\xbb\xbf" + b"gate_id,vehicle_id,occurred_at,type\n",
                 [b"huu-nghi,A,2021-12-20 07:00:00,queued"])
    for encoding in ("utf-8-sig", "utf-8"):  # the default skips it too (Excel writes one)
        docs, report = parse(path, encoding, cmap=ColumnMap())
        assert report.summary() == "1 rows: 1 good, 0 rejected", encoding
        assert docs[0]["gate_id"] == "huu-nghi"


def test_json_lines_bad_bytes_and_big_fields_are_rows_too(tmp_path):
    ok = b'{"gate_id": "huu-nghi", "vehicle_id": "A", "occurred_at": "2021-12-20 07:00:00", ' \
         b'"type": "queued"}'
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"\n".join([
        b"\xef\xbb\xbf" + ok,
        ok.replace(b'"A"', b'"29\xd0-1"'),  # Windows-1258 in a UTF-8 file
        ok.replace(b'"A"', b'"B", "note": "' + b"z" * 70_000 + b'"'),
        ok.replace(b'"A"', b'"C"')]) + b"\n")
    docs, report = parse(path, cmap=ColumnMap())
    assert reasons(report) == [(2, "bad_encoding"), (3, "field_too_large")]
    assert report.errors[0].detail.startswith("byte 0xd0 at offset 41 is not valid utf-8")
    assert [d["vehicle_id"] for d in docs] == ["A", "C"]
    docs, report = parse(path, "cp1258", cmap=ColumnMap())
    assert [d["vehicle_id"] for d in docs] == ["29Đ-1", "C"]
    # a UTF-8 byte-order mark read as Windows-1258 is text ("ï»¿"): that line is not JSON
    assert reasons(report) == [(1, "unparseable"), (3, "field_too_large")]


def test_only_the_supported_encodings_are_accepted():
    assert [replay.check_encoding(n) for n in ("utf-8", "UTF8", "utf_8_sig", "windows-1258")] \
        == ["utf-8", "utf-8", "utf-8-sig", "cp1258"]
    for name in ("latin-1", "cp1252", "no-such-codec"):
        with pytest.raises(ConfigError) as info:
            replay.check_encoding(name)
        assert str(info.value) == (f"command line: --encoding: {name!r} is not supported; use "
                                   "utf-8 (the default), utf-8-sig or cp1258 (Windows-1258)")


def test_replay_dry_run_prints_the_rejected_rows_and_exits_3(tmp_path, capsys):
    path = write(tmp_path / "log.csv", HEADER, [*CP1258_ROWS, b"mong-cai,1,2021-12-20 07:00:00,"
                                                + VAO_BAI + b"," + XUAT + b","])
    args = ["replay", str(path), "--map", MAP, "--types", TYPES, "--directions", DIRECTIONS,
            "--dry-run"]
    assert cli.main(args) == 3
    hint = "is not valid utf-8; a Windows file? try --encoding cp1258"
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: row 1: bad_encoding: column 'SuKien': byte 0xe0 {hint}",
        f"{path}: row 2: bad_encoding: column 'BienSo': byte 0xd0 {hint}",
        f"{path}: row 3: bad_encoding: column 'SuKien': byte 0xe0 {hint}",
        f"{path}: row 4: bad_encoding: column 'SuKien': byte 0xfd {hint}",
        f"{path}: row 5: bad_encoding: column 'SuKien': byte 0xe0 {hint}",
        f"{path}: 5 rows: 0 good, 5 rejected (bad_encoding 5)"]
    assert cli.main([*args, "--encoding", "cp1258"]) == 3
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{path}: row 5: unknown_gate: gate_id 'mong-cai' is not configured",
                   f"{path}: 5 rows: 4 good, 1 rejected (unknown_gate 1)"]
    assert cli.main([*args, "--encoding", "latin-1"]) == 2
    assert "--encoding: 'latin-1' is not supported" in capsys.readouterr().err


def test_the_summary_is_printed_when_reading_stops_half_way(tmp_path, capsys, monkeypatch):
    path = write(tmp_path / "log.csv", b"gate_id,vehicle_id,occurred_at,type\n",
                 [b"huu-nghi,%d,2021-12-20 07:00:00,queued" % i for i in range(5)])
    real = replay.to_event

    def interrupted_on_the_fourth_row(row, cmap):  # type: ignore[no-untyped-def]
        if row["vehicle_id"] == "3":
            raise KeyboardInterrupt
        return real(row, cmap)

    monkeypatch.setattr(replay, "to_event", interrupted_on_the_fourth_row)
    assert cli.main(["replay", str(path), "--dry-run"]) == 130
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: 4 rows: 3 good, 0 rejected; INCOMPLETE, stopped after 4 rows: interrupted"]


def test_the_summary_and_the_sent_count_are_printed_when_sending_fails(tmp_path, capsys,
                                                                       monkeypatch):
    import aiokafka

    import gatewatch.kafka

    path = write(tmp_path / "log.csv", b"gate_id,vehicle_id,occurred_at,type\n",
                 [b"huu-nghi,%d,2021-12-20 07:00:0%d,queued" % (i, i) for i in range(5)])

    class Producer:  # the broker goes away after two events
        def __init__(self, **kwargs: object) -> None:
            self.sent = 0

        async def start(self) -> None:
            pass

        async def send(self, topic: str, value: bytes, key: bytes) -> None:
            if self.sent == 2:
                raise ConnectionError("broker gone")
            self.sent += 1

        async def flush(self) -> None:
            pass

        async def stop(self) -> None:
            pass

    monkeypatch.setattr(gatewatch.kafka, "ensure_topics", lambda *a, **kw: 4)
    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", Producer)
    with pytest.raises(ConnectionError):
        cli.main(["replay", str(path)])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{path}: 5 rows: 5 good, 0 rejected"
    assert out[1].startswith("replay: stopped (ConnectionError: broker gone): 0/5 events "
                             "confirmed sent to gate.events on ")
