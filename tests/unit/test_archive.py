"""core.archive: what comes out of an upload, good or hostile, and what never does."""

from __future__ import annotations

import dataclasses
import gzip
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from pawdex.core.archive import (
    ARCHIVE_ITSELF,
    ArchiveEntry,
    ArchiveLimits,
    detect_archive_kind,
    iter_archive,
    iter_single_files,
    sanitize_member_name,
)
from pawdex.core.errors import CorruptArchive, UnsupportedArchive
from pawdex.core.settings import Settings
from tests.corpus import (
    jpeg_bytes,
    noise_bytes,
    set_zip_flag,
    tar_bytes,
    tar_special,
    with_raw_zip_names,
    zip_bytes,
)

MiB = 1024 * 1024
LIMITS = ArchiveLimits(
    max_members=100, max_member_bytes=MiB, max_total_bytes=16 * MiB, max_ratio=200
)
PHOTO = jpeg_bytes()
TRAVERSALS = {
    "../x.jpg": "x.jpg",
    "/etc/x.jpg": "etc/x.jpg",
    "C:\\x.jpg": "x.jpg",
    "a/../../b.jpg": "a/b.jpg",
}


def limited(**changes: float) -> ArchiveLimits:
    return dataclasses.replace(LIMITS, **changes)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read_all(path: Path, limits: ArchiveLimits = LIMITS) -> list[ArchiveEntry]:
    return list(iter_archive(path, limits))


def good(entries: list[ArchiveEntry]) -> dict[str, bytes]:
    return {e.name: e.data for e in entries if e.data is not None}


def errors(entries: list[ArchiveEntry]) -> dict[str, str]:
    return {e.name: e.error for e in entries if e.error is not None}


# ---------------------------------------------------------------- good archives


def test_zip_members_come_out_with_their_folders(tmp_path):
    members = [
        ("shelter/rex/2023/", b""),
        ("shelter/rex/2023/front.jpg", PHOTO),
        ("shelter/mia/2024/side.jpg", PHOTO + b"2"),
        ("loose.jpg", PHOTO + b"3"),
    ]
    entries = read_all(write(tmp_path, "upload.bin", zip_bytes(members)))

    assert [(e.index, e.name, e.data) for e in entries] == [
        (0, "shelter/rex/2023/front.jpg", PHOTO),
        (1, "shelter/mia/2024/side.jpg", PHOTO + b"2"),
        (2, "loose.jpg", PHOTO + b"3"),
    ]
    assert all(e.error is None for e in entries)


# What a Mac, a Windows PC and a NAS leave in a real shelter archive, beside two photos.
CLUTTER = [
    ("kennel/.DS_Store", b"\x00\x00\x00\x01Bud1"),
    ("__MACOSX/kennel/._rex.jpg", b"\x00\x05\x16\x07 resource fork"),
    ("kennel/._mia.jpg", b"\x00\x05\x16\x07"),
    ("kennel/Thumbs.db", b"\xd0\xcf\x11\xe0 thumbnail cache"),
    ("kennel/desktop.ini", b"[.ShellClassInfo]"),
    ("kennel/@eaDir/rex.jpg/SYNOPHOTO_THUMB_M.jpg", PHOTO + b"thumb"),
    ("kennel/rex.jpg", PHOTO),
    ("kennel/mia.jpg", PHOTO + b"2"),
]


@pytest.mark.parametrize("pack", ["zip", "tar", "loose"])
def test_system_clutter_is_skipped_unread_with_a_reason(tmp_path, pack):
    """Junk is neither a photo nor an error: a skipped entry that says what it is, whose
    bytes are never read (a huge Thumbs.db costs nothing)."""
    if pack == "zip":
        entries = read_all(write(tmp_path, "upload", zip_bytes(CLUTTER)))
    elif pack == "tar":
        entries = read_all(write(tmp_path, "upload", tar_bytes(CLUTTER, "gz")))
    else:
        files = []
        for i, (name, data) in enumerate(CLUTTER):
            files.append((name, write(tmp_path, f"file{i}", data)))
        entries = list(iter_single_files(files, LIMITS))
    assert good(entries) == {"kennel/rex.jpg": PHOTO, "kennel/mia.jpg": PHOTO + b"2"}
    assert errors(entries) == {}
    skipped = {e.name: e.skipped for e in entries if e.skipped is not None}
    assert skipped == {
        "kennel/.DS_Store": "system file .DS_Store",
        "__MACOSX/kennel/._rex.jpg": "system folder __MACOSX/",
        "kennel/._mia.jpg": "macOS resource fork",
        "kennel/Thumbs.db": "system file Thumbs.db",
        "kennel/desktop.ini": "system file desktop.ini",
        "kennel/@eaDir/rex.jpg/SYNOPHOTO_THUMB_M.jpg": "system folder @eaDir/",
    }
    assert [e.index for e in entries] == list(range(len(CLUTTER)))


def test_clutter_is_recognised_by_name_not_by_a_lookalike():
    from pawdex.core.archive.names import junk_reason

    assert junk_reason("THUMBS.DB") == "system file THUMBS.DB"
    for name in ("thumbs.db.jpg", "macosx/rex.jpg", "a_rex.jpg", "kennel/.hidden.jpg"):
        assert junk_reason(name) is None, name


@pytest.mark.parametrize("compression", ["", "gz", "bz2", "xz"])
def test_tar_members_come_out_with_their_folders(tmp_path, compression):
    folder = tarfile.TarInfo("shelter/rex")
    folder.type = tarfile.DIRTYPE
    data = tar_bytes([folder, ("shelter/rex/a.jpg", PHOTO), ("b.jpg", b"bee")], compression)
    entries = read_all(write(tmp_path, "upload", data))

    assert [(e.index, e.name, e.data) for e in entries] == [
        (0, "shelter/rex/a.jpg", PHOTO),
        (1, "b.jpg", b"bee"),
    ]


def test_kind_comes_from_the_bytes_not_the_name(tmp_path):
    assert detect_archive_kind(write(tmp_path, "a.tar", zip_bytes([("x", b"x")]))) == "zip"
    assert detect_archive_kind(write(tmp_path, "b.zip", tar_bytes([("x", b"x")], "gz"))) == "tar"
    assert detect_archive_kind(write(tmp_path, "c.jpg", tar_bytes([("x", b"x")]))) == "tar"
    assert detect_archive_kind(write(tmp_path, "d.xz", tar_bytes([("x", b"x")], "xz"))) == "tar"
    assert detect_archive_kind(write(tmp_path, "e.bz2", tar_bytes([("x", b"x")], "bz2"))) == "tar"
    old_tar = tar_bytes([("x", b"x")], format=tarfile.GNU_FORMAT)
    assert detect_archive_kind(write(tmp_path, "f.old", old_tar)) == "tar"
    assert detect_archive_kind(write(tmp_path, "g.zip", PHOTO)) is None
    assert detect_archive_kind(write(tmp_path, "h.tgz", gzip.compress(PHOTO))) is None
    assert detect_archive_kind(write(tmp_path, "i.zip", b"")) is None
    assert detect_archive_kind(write(tmp_path, "j.tar", b"hello, not a tar\n" * 100)) is None


def test_a_file_that_is_not_an_archive_is_refused(tmp_path):
    with pytest.raises(UnsupportedArchive):
        iter_archive(write(tmp_path, "photos.zip", PHOTO), LIMITS)
    with pytest.raises(UnsupportedArchive):
        iter_archive(write(tmp_path, "empty.tar", b""), LIMITS)


# ---------------------------------------------------------------- names


@pytest.mark.parametrize("pack", ["zip", "tar"])
def test_traversal_names_come_out_inside(tmp_path, pack):
    members = [(name, PHOTO) for name in TRAVERSALS]
    data = zip_bytes(members) if pack == "zip" else tar_bytes(members)
    entries = read_all(write(tmp_path, "upload", data))

    assert [e.name for e in entries] == list(TRAVERSALS.values())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *TRAVERSALS.items(),
        ("C:x.jpg", "x.jpg"),
        ("d:/photos/x.jpg", "photos/x.jpg"),
        ("/C:/x.jpg", "x.jpg"),
        ("./a/./b.jpg", "a/b.jpg"),
        ("a\\b\\c.jpg", "a/b/c.jpg"),
        ("//server/share/x.jpg", "server/share/x.jpg"),
        ("a/ .. /b.jpg", "a/b.jpg"),
        ("a\x00b\x1f\x7f.jpg", "ab.jpg"),
        ("evil\u202egpj.exe", "evilgpj.exe"),
        ("e\u0301te\u0301.jpg", "\u00e9t\u00e9.jpg"),  # NFD in, NFC out
        ("", "unnamed"),
        ("../..", "unnamed"),
        ("/", "unnamed"),
        (b"caf\xc3\xa9.jpg", "caf\u00e9.jpg"),  # UTF-8 bytes
        (b"caf\x82.jpg", "caf\u00e9.jpg"),  # cp437 bytes (zip's legacy encoding)
        ("caf\udce9.jpg", "caf\u00e9.jpg"),  # undecodable byte carried as a surrogate
    ],
)
def test_sanitize_member_name(raw, expected):
    legacy = "latin-1" if isinstance(raw, str) and "\udce9" in raw else "cp437"
    assert sanitize_member_name(raw, legacy_encoding=legacy) == expected


def test_long_names_are_capped_keeping_the_extension_and_top_folders():
    long_component = sanitize_member_name("x" * 1000 + ".jpeg")
    assert len(long_component) == 120
    assert long_component.endswith(".jpeg")

    deep = "/".join(f"folder{i:02d}-{'y' * 12}" for i in range(60)) + "/photo.jpg"
    capped = sanitize_member_name(deep)
    assert len(capped) <= 400
    assert capped.startswith("folder00-")
    assert capped.endswith("/photo.jpg")
    assert all(part and part != ".." for part in capped.split("/"))


def test_non_utf8_zip_names_are_decoded(tmp_path):
    data = zip_bytes([("cafXXA.jpg", PHOTO), ("cafXB.jpg", PHOTO), ("long.jpg", PHOTO)])
    data = with_raw_zip_names(data, {"cafXXA": b"caf\xc3\xa9A", "cafXB": b"caf\x8aB"})
    entries = read_all(write(tmp_path, "names.zip", data))

    # UTF-8 written without the flag (Windows, macOS), then genuine cp437.
    assert [e.name for e in entries] == ["caf\u00e9A.jpg", "caf\u00e8B.jpg", "long.jpg"]


def test_non_utf8_tar_names_are_decoded(tmp_path):
    data = tar_bytes(
        [("caf\udce9.jpg", PHOTO), ("x" * 300 + ".jpg", PHOTO)],
        format=tarfile.GNU_FORMAT,
        encoding="utf-8",
        errors="surrogateescape",
    )
    names = [e.name for e in read_all(write(tmp_path, "names.tar", data))]

    assert names[0] == "caf\u00e9.jpg"
    assert len(names[1]) == 120
    assert names[1].endswith(".jpg")


# ---------------------------------------------------------------- refused members


def test_links_and_devices_in_a_tar_are_refused_beside_good_members(tmp_path):
    data = tar_bytes(
        [
            ("before.jpg", PHOTO),
            tar_special("soft.jpg", tarfile.SYMTYPE, "/etc/passwd"),
            tar_special("hard.jpg", tarfile.LNKTYPE, "before.jpg"),
            tar_special("tty", tarfile.CHRTYPE),
            tar_special("disk", tarfile.BLKTYPE),
            tar_special("pipe", tarfile.FIFOTYPE),
            ("after.jpg", PHOTO),
        ]
    )
    entries = read_all(write(tmp_path, "specials.tar", data))

    assert good(entries) == {"before.jpg": PHOTO, "after.jpg": PHOTO}
    refused = errors(entries)
    assert "symbolic link" in refused["soft.jpg"]
    assert "hard link" in refused["hard.jpg"]
    assert all("special files" in refused[n] for n in ("tty", "disk", "pipe"))
    assert [e.index for e in entries] == list(range(7))


def test_a_symlink_in_a_zip_is_refused(tmp_path):
    link = zipfile.ZipInfo("link.jpg")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    data = zip_bytes([(link, b"/etc/passwd"), ("ok.jpg", PHOTO)])
    entries = read_all(write(tmp_path, "links.zip", data))

    assert good(entries) == {"ok.jpg": PHOTO}
    assert "symbolic link" in errors(entries)["link.jpg"]


@pytest.mark.parametrize("pack", ["zip", "tar"])
def test_a_member_over_the_size_limit_is_refused(tmp_path, pack):
    limits = limited(max_members=10, max_member_bytes=1000, max_total_bytes=MiB)
    members = [("big.jpg", noise_bytes(1001)), ("exact.jpg", noise_bytes(1000)), ("ok.jpg", b"ok")]
    data = zip_bytes(members) if pack == "zip" else tar_bytes(members, "gz")
    entries = read_all(write(tmp_path, "upload", data), limits)

    assert "larger than" in errors(entries)["big.jpg"]
    assert set(good(entries)) == {"exact.jpg", "ok.jpg"}


def test_a_zip_member_larger_than_its_header_says_is_still_capped(tmp_path):
    limits = limited(max_members=10, max_member_bytes=1000, max_total_bytes=MiB)
    data = bytearray(zip_bytes([("liar.jpg", noise_bytes(5000))], zipfile.ZIP_STORED))
    # Declare 900 bytes in the central directory (file size field at offset 24).
    at = data.find(b"PK\x01\x02")
    data[at + 24 : at + 28] = (900).to_bytes(4, "little")
    entries = read_all(write(tmp_path, "liar.zip", bytes(data)), limits)

    assert entries[0].data is None  # zipfile stops at 900 bytes, then the CRC disagrees
    assert "damaged" in entries[0].error


def test_a_zip_bomb_is_refused_by_its_measured_ratio(tmp_path):
    limits = limited(max_members=10, max_member_bytes=64 * MiB, max_total_bytes=128 * MiB)
    data = zip_bytes([("bomb.jpg", bytes(20 * MiB)), ("ok.jpg", PHOTO)])
    assert len(data) < 100_000
    entries = read_all(write(tmp_path, "bomb.zip", data), limits)

    assert "zip bomb" in errors(entries)["bomb.jpg"]
    assert good(entries) == {"ok.jpg": PHOTO}


def test_small_compressible_members_are_not_mistaken_for_bombs(tmp_path):
    entries = read_all(write(tmp_path, "blank.zip", zip_bytes([("blank.bmp", bytes(100_000))])))
    assert good(entries) == {"blank.bmp": bytes(100_000)}


def test_an_encrypted_zip_member_is_refused(tmp_path):
    data = set_zip_flag(zip_bytes([("secret.jpg", PHOTO)]), 0x1)
    entries = read_all(write(tmp_path, "secret.zip", data))

    assert "encrypted" in errors(entries)["secret.jpg"]


def test_a_damaged_zip_member_is_refused_and_the_rest_read(tmp_path):
    data = zip_bytes([("bad.jpg", b"A" * 100), ("ok.jpg", PHOTO)], zipfile.ZIP_STORED)
    data = data.replace(b"A" * 100, b"B" + b"A" * 99)
    entries = read_all(write(tmp_path, "crc.zip", data))

    assert "damaged" in errors(entries)["bad.jpg"]
    assert good(entries) == {"ok.jpg": PHOTO}


@pytest.mark.parametrize("pack", ["zip", "tar"])
def test_nested_archives_are_refused(tmp_path, pack):
    members = [
        ("inner.zip", zip_bytes([("x.jpg", PHOTO)])),
        ("inner.tar.gz", tar_bytes([("x.jpg", PHOTO)], "gz")),
        ("inner.tar", tar_bytes([("x.jpg", PHOTO)])),
        ("photo.jpg", PHOTO),
    ]
    data = zip_bytes(members) if pack == "zip" else tar_bytes(members, "gz")
    entries = read_all(write(tmp_path, "outer", data))

    assert good(entries) == {"photo.jpg": PHOTO}
    for name in ("inner.zip", "inner.tar.gz", "inner.tar"):
        assert errors(entries)[name] == "nested archives are not indexed; upload it separately"


# ---------------------------------------------------------------- archive-wide limits


def test_the_member_limit_stops_a_tar_with_one_error_entry(tmp_path):
    limits = limited(max_members=3, max_total_bytes=MiB)
    data = tar_bytes([(f"{i}.jpg", PHOTO) for i in range(5)])
    entries = read_all(write(tmp_path, "many.tar", data), limits)

    assert [e.name for e in entries] == ["0.jpg", "1.jpg", "2.jpg", ARCHIVE_ITSELF]
    assert "more than 3 entries" in entries[-1].error


def test_the_member_limit_refuses_a_zip_before_loading_its_directory(tmp_path):
    limits = limited(max_members=3, max_total_bytes=MiB)
    data = zip_bytes([(f"{i}.jpg", PHOTO) for i in range(5)])
    entries = read_all(write(tmp_path, "many.zip", data), limits)

    assert len(entries) == 1
    assert entries[0].name == ARCHIVE_ITSELF
    assert "5 entries" in entries[0].error


@pytest.mark.parametrize("pack", ["zip", "tar"])
def test_exactly_the_member_limit_is_fine(tmp_path, pack):
    limits = limited(max_members=3, max_total_bytes=MiB)
    members = [(f"{i}.jpg", PHOTO) for i in range(3)]
    data = zip_bytes(members) if pack == "zip" else tar_bytes(members)
    entries = read_all(write(tmp_path, "three", data), limits)

    assert [e.error for e in entries] == [None, None, None]


@pytest.mark.parametrize("pack", ["zip", "tar"])
def test_the_total_size_limit_stops_with_one_error_entry(tmp_path, pack):
    limits = limited(max_total_bytes=2500)
    members = [(f"{i}.jpg", noise_bytes(1000, seed=i)) for i in range(4)]
    data = zip_bytes(members) if pack == "zip" else tar_bytes(members)
    entries = read_all(write(tmp_path, "big", data), limits)

    assert [e.name for e in entries] == ["0.jpg", "1.jpg", ARCHIVE_ITSELF]
    assert "in total" in entries[-1].error


# ---------------------------------------------------------------- broken archives


def test_a_zip_member_with_an_empty_name_is_read_not_a_crash(tmp_path):
    # zipfile cuts a name at its first NUL, and ZipInfo.is_dir() fails on an empty one.
    data = with_raw_zip_names(zip_bytes([("X.jpg", PHOTO), ("ok.jpg", PHOTO)]), {"X": b"\0"})
    entries = read_all(write(tmp_path, "empty-name.zip", data))

    assert [(e.name, e.data) for e in entries] == [("unnamed", PHOTO), ("ok.jpg", PHOTO)]


def test_a_name_wrongly_flagged_utf8_is_read_as_cp437_and_the_rest_kept(tmp_path):
    data = zip_bytes([("a.jpg", PHOTO), ("bad-XX.jpg", PHOTO), ("b.jpg", PHOTO)])
    data = set_zip_flag(with_raw_zip_names(data, {"bad-XX": b"bad-\xff\xfe"}), 0x800)
    entries = read_all(write(tmp_path, "flagged.zip", data))

    assert [e.name for e in entries] == ["a.jpg", "bad-\u00a0\u25a0.jpg", "b.jpg"]
    assert all(e.data == PHOTO for e in entries)


def test_a_zip_whose_end_record_points_past_its_directory_is_refused(tmp_path):
    data = bytearray(zip_bytes([("a.jpg", PHOTO)]))
    end = data.rfind(b"PK\x05\x06")
    data[end + 16 : end + 20] = (len(data) * 4).to_bytes(4, "little")  # directory offset
    with pytest.raises(CorruptArchive, match="not where its end record says"):
        iter_archive(write(tmp_path, "lying.zip", bytes(data)), LIMITS)


def test_a_zip_with_a_corrupt_central_directory_is_refused(tmp_path):
    data = zip_bytes([("a.jpg", PHOTO)]).replace(b"PK\x01\x02", b"XX\x01\x02")
    with pytest.raises(CorruptArchive):
        iter_archive(write(tmp_path, "corrupt.zip", data), LIMITS)


def test_a_cut_off_zip_is_refused(tmp_path):
    data = zip_bytes([("a.jpg", noise_bytes(10_000))])
    with pytest.raises(CorruptArchive):
        iter_archive(write(tmp_path, "cut.zip", data[: len(data) // 2]), LIMITS)


def test_a_tar_with_a_damaged_first_header_is_refused(tmp_path):
    data = bytearray(tar_bytes([("a.jpg", PHOTO)]))
    data[148:156] = b"0000000\0"  # wrong checksum
    with pytest.raises(CorruptArchive):
        iter_archive(write(tmp_path, "corrupt.tar", bytes(data)), LIMITS)


@pytest.mark.parametrize("compression", ["gz", "bz2", "xz"])
def test_a_truncated_compressed_tar_keeps_its_good_members(tmp_path, compression):
    members = [(f"{i}.jpg", noise_bytes(64 * 1024, seed=i)) for i in range(4)]
    options = {"compresslevel": 1} if compression == "bz2" else {}  # 100 kB bz2 blocks
    data = tar_bytes(members, compression, **options)
    entries = read_all(write(tmp_path, "cut", data[: int(len(data) * 0.6)]))

    read = [e for e in entries if e.data is not None]
    assert 1 <= len(read) < 4
    assert [(e.name, e.data) for e in read] == members[: len(read)]
    assert entries[-1].error is not None
    assert "truncated" in entries[-1].error
    assert len(entries) == len(read) + 1


def test_a_tar_cut_between_members_is_reported(tmp_path):
    data = tar_bytes([("a.jpg", b"a" * 512), ("b.jpg", b"b" * 512)])
    cut = data[: 2 * 512]  # a's header and data, nothing more
    entries = read_all(write(tmp_path, "cut.tar", cut))

    assert entries[0].data == b"a" * 512
    assert entries[1].name == ARCHIVE_ITSELF
    assert "truncated" in entries[1].error


def test_a_tar_cut_inside_a_member_is_reported_on_that_member(tmp_path):
    data = tar_bytes([("a.jpg", b"a" * 512), ("b.jpg", noise_bytes(4096))])
    entries = read_all(write(tmp_path, "cut.tar", data[: 3 * 512 + 100]))

    assert entries[0].data == b"a" * 512
    assert entries[1].name == "b.jpg"
    assert "truncated" in entries[1].error
    assert len(entries) == 2


def test_an_oversized_tar_extended_header_is_not_loaded(tmp_path):
    huge = tarfile.TarInfo("b.jpg")
    huge.pax_headers = {"comment": "x" * (2 * MiB)}
    data = tar_bytes([("a.jpg", PHOTO), huge], format=tarfile.PAX_FORMAT)
    entries = read_all(write(tmp_path, "pax.tar", data))

    assert entries[0].data == PHOTO
    assert entries[1].name == ARCHIVE_ITSELF
    assert entries[1].error is not None


# ---------------------------------------------------------------- loose files, plumbing


def test_single_files_are_entries_like_archive_members(tmp_path):
    limits = limited(max_members=10, max_member_bytes=1000, max_total_bytes=MiB)
    photo = write(tmp_path, "spool1", PHOTO[:900])
    big = write(tmp_path, "spool2", noise_bytes(1001))
    archive = write(tmp_path, "spool3", zip_bytes([("x.jpg", b"x")]))
    entries = list(
        iter_single_files(
            [
                ("../../evil.jpg", photo),
                ("C:\\Users\\me\\big.jpg", big),
                ("photos.zip", archive),
                ("gone.jpg", tmp_path / "missing"),
            ],
            limits,
        )
    )

    assert [(e.index, e.name) for e in entries] == [
        (0, "evil.jpg"),
        (1, "Users/me/big.jpg"),
        (2, "photos.zip"),
        (3, "gone.jpg"),
    ]
    assert entries[0].data == PHOTO[:900]
    assert "larger than" in entries[1].error
    assert "archive" in entries[2].error
    assert "cannot be read" in entries[3].error


def test_single_files_respect_the_member_limit(tmp_path):
    limits = limited(max_members=1, max_total_bytes=MiB)
    path = write(tmp_path, "spool", PHOTO)
    entries = list(iter_single_files([("a.jpg", path), ("b.jpg", path)], limits))

    assert [e.name for e in entries] == ["a.jpg", ARCHIVE_ITSELF]


def test_limits_come_from_settings():
    settings = Settings(
        max_archive_members=7,
        max_member_bytes=8,
        max_archive_total_bytes=9,
        max_compression_ratio=10.5,
    )
    assert ArchiveLimits.from_settings(settings) == ArchiveLimits(7, 8, 9, 10.5)


def test_an_entry_has_data_or_an_error_never_both():
    with pytest.raises(ValueError):
        ArchiveEntry(index=0, name="a", data=b"x", error="bad")
    with pytest.raises(ValueError):
        ArchiveEntry(index=0, name="a", data=None, error=None)
