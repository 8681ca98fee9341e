"""Where a recording may be written, and in which format.

Two callers, two rules:

- Python code in the user's own process (``cam.record("~/data/run1.ome.tif")``) may write anywhere
  the user can: ``check_output_path`` only checks the suffix and refuses to replace an existing
  recording unless ``overwrite=True``.
- A name that came over the network (REST, WebSocket) is confined to one configured recordings
  folder by ``resolve_recording_path``: absolute paths, ``..``, hidden or odd names, and symlinks
  that lead out of the folder are refused, each with a ``ValueError`` that says what to change.

The format always follows from the suffix: ``.ome.tif``/``.ome.tiff`` is OME-TIFF, ``.ome.zarr``
is OME-Zarr.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Literal

RecordingFormat = Literal["ome-tiff", "ome-zarr"]

# Suffix (lower case) -> format. Longest first so ".ome.tiff" is not read as ".tif"-something.
SUFFIXES: dict[str, RecordingFormat] = {
    ".ome.tiff": "ome-tiff",
    ".ome.tif": "ome-tiff",
    ".ome.zarr": "ome-zarr",
}
# The suffix appended when a format is given for a name that has none.
DEFAULT_SUFFIX: dict[RecordingFormat, str] = {"ome-tiff": ".ome.tif", "ome-zarr": ".ome.zarr"}
# Accepted spellings of ``format=``.
FORMAT_ALIASES: dict[str, RecordingFormat] = {
    "ome-tiff": "ome-tiff",
    "ome-tif": "ome-tiff",
    "ometiff": "ome-tiff",
    "tiff": "ome-tiff",
    "tif": "ome-tiff",
    "ome-zarr": "ome-zarr",
    "omezarr": "ome-zarr",
    "zarr": "ome-zarr",
}

# Limits for names from the network: generous for people, small for attackers.
MAX_NAME_LENGTH = 255  # bytes per path component (the common file-system limit)
MAX_PATH_LENGTH = 1024  # characters for the whole relative name
MAX_DEPTH = 8  # sub-folders
# Characters that are unsafe or not portable in file names (Windows forbids these; control
# characters confuse terminals and logs). "/" separates sub-folders and is handled apart.
_BAD_CHARS = re.compile(r'[\x00-\x1f\x7f<>:"\\|?*]')
# Names Windows reserves whatever the extension (a share mounted from Windows would choke).
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)} | {f"lpt{i}" for i in range(10)}


def format_from_suffix(path: str | os.PathLike[str]) -> RecordingFormat | None:
    """The format a file name asks for by its suffix, or None when it has no known suffix."""
    name = os.fspath(path).rstrip("/\\").lower()
    for suffix, fmt in SUFFIXES.items():
        if name.endswith(suffix) and len(name) > len(suffix):
            return fmt
    return None


def normalize_format(format: str | None) -> RecordingFormat | None:
    """``format=`` as given by a user ("zarr", "OME-TIFF", ...) -> "ome-tiff" | "ome-zarr" | None."""
    if format is None:
        return None
    if not isinstance(format, str) or format.strip().lower() not in FORMAT_ALIASES:
        raise ValueError(f"format={format!r} is not allowed: 'ome-tiff' or 'ome-zarr' (or None: from the suffix)")
    return FORMAT_ALIASES[format.strip().lower()]


def choose_format(path: str | os.PathLike[str], format: str | None = None) -> tuple[Path, RecordingFormat]:
    """The path to write and its format: from ``format`` if given, else from the suffix.

    A name without a known suffix gets the format's suffix appended (``format`` is then required);
    a suffix that contradicts ``format`` is an error rather than a guess.
    """
    fmt = normalize_format(format)
    p = Path(os.fspath(path))
    by_suffix = format_from_suffix(p)
    if by_suffix is None:
        if fmt is None:
            raise ValueError(
                f"cannot tell the format of {os.fspath(path)!r}: end the name with .ome.tif, .ome.tiff "
                "or .ome.zarr, or pass format='ome-tiff' / 'ome-zarr'"
            )
        return p.with_name(p.name + DEFAULT_SUFFIX[fmt]), fmt
    if fmt is not None and fmt != by_suffix:
        raise ValueError(
            f"format={format!r} contradicts the suffix of {p.name!r} (which means {by_suffix}); "
            "change one of them"
        )
    return p, by_suffix


def check_output_path(path: str | os.PathLike[str], format: str | None = None, *, overwrite: bool = False) -> tuple[Path, RecordingFormat]:
    """Check a path given by in-process Python code; returns the absolute path and format.

    Any location is allowed (it is the user's own script). Refused, with a ``ValueError``: an
    unknown suffix without ``format``, an existing file or folder without ``overwrite=True``, and
    something that exists but is not a recording of that format (never replaced, even with
    ``overwrite``: a typo must not delete a folder of data).
    """
    p, fmt = choose_format(Path(os.fspath(path)).expanduser(), format)
    p = Path(os.path.abspath(p))
    _check_existing(p, fmt, overwrite, shown=str(p))
    return p, fmt


def resolve_recording_path(root: str | os.PathLike[str], name: str, overwrite: bool = False) -> Path:
    """Confine a recording name that came from the network to the folder ``root``.

    ``name`` is a relative name such as ``"run1.ome.tif"`` or ``"2024-05-01/run1.ome.zarr"``
    (sub-folders are created by the recorder). Returns the absolute path inside ``root`` (with
    symlinks resolved). Raises ``ValueError`` with a message fit to show the remote user for:
    a name that is not a string, empty, too long, absolute (``/x``, ``C:\\x``, ``\\\\server``),
    has ``..``, ``.`` or hidden (``.x``) parts, backslashes, control or reserved characters,
    a suffix other than ``.ome.tif``/``.ome.tiff``/``.ome.zarr``; a path that leads out of
    ``root`` through a symlink; a symlink as the recording itself; and an existing recording
    unless ``overwrite=True``. The format follows from the suffix (``format_from_suffix``).

    This is a check at call time: the recorder creates the file right after, so a process that
    can create symlinks inside ``root`` between the two could still race it. Keep ``root`` writable
    only by the labcam server.
    """
    root_path = Path(os.fspath(root)).expanduser()
    if not root_path.is_dir():
        raise ValueError(f"the recordings folder {os.fspath(root)!r} does not exist or is not a folder")
    real_root = Path(os.path.realpath(root_path))

    parts = _check_relative_name(name)
    fmt = format_from_suffix(parts[-1])
    if fmt is None:
        raise ValueError(
            f"recording name {name!r} must end with .ome.tif, .ome.tiff or .ome.zarr "
            "and have a name before the suffix"
        )

    # Every folder on the way must stay inside the root once symlinks are followed: a link
    # "data -> /etc" inside the recordings folder must not make "data/x.ome.tif" land in /etc.
    current = real_root
    for i, part in enumerate(parts[:-1]):
        current = current / part
        if os.path.lexists(current):
            real = Path(os.path.realpath(current))
            if not _is_within(real, real_root):
                raise ValueError(
                    f"recording name {name!r} leads out of the recordings folder "
                    f"(through the link {'/'.join(parts[: i + 1])!r})"
                )
            if not real.is_dir():
                raise ValueError(f"recording name {name!r}: {'/'.join(parts[: i + 1])!r} exists and is not a folder")
            current = real
    final = current / parts[-1]
    if os.path.islink(final):
        # Even a link that points inside would let overwrite=True replace whatever it points to.
        raise ValueError(f"recording name {name!r} is a symbolic link; links are not written through")
    _check_existing(final, fmt, overwrite, shown=name)
    if not _is_within(Path(os.path.realpath(final.parent)), real_root):  # pragma: no cover - belt and braces
        raise ValueError(f"recording name {name!r} leads out of the recordings folder")
    return final


# -- helpers ---------------------------------------------------------------------------------------


def _check_relative_name(name: object) -> list[str]:
    if not isinstance(name, str):
        raise ValueError(f"recording name {name!r} is not allowed: a text such as 'run1.ome.tif'")
    if not name.strip():
        raise ValueError("recording name is empty: give a name such as 'run1.ome.tif'")
    if len(name) > MAX_PATH_LENGTH:
        raise ValueError(f"recording name is too long ({len(name)} characters; at most {MAX_PATH_LENGTH})")
    if "\\" in name:
        raise ValueError(f"recording name {name!r} has a backslash; use '/' to name a sub-folder")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise ValueError(
            f"recording name {name!r} is an absolute path; give a name relative to the recordings "
            "folder, such as 'run1.ome.tif' or 'day1/run1.ome.tif'"
        )
    if name.startswith("~"):
        raise ValueError(f"recording name {name!r} starts with '~'; give a name relative to the recordings folder")
    parts = PurePosixPath(name).parts
    raw_parts = name.split("/")
    if any(p == ".." for p in raw_parts):
        raise ValueError(f"recording name {name!r} has '..'; names must stay inside the recordings folder")
    if any(p in ("", ".") for p in raw_parts):
        raise ValueError(f"recording name {name!r} has an empty or '.' part; write it as 'folder/name.ome.tif'")
    if len(parts) - 1 > MAX_DEPTH:
        raise ValueError(f"recording name {name!r} has too many sub-folders (at most {MAX_DEPTH})")
    for part in parts:
        if part.startswith("."):
            raise ValueError(f"recording name {name!r}: hidden names (starting with '.') are not allowed")
        if _BAD_CHARS.search(part):
            raise ValueError(
                f"recording name {name!r} has a character that is not allowed in file names "
                '(control characters or any of < > : " | ? *)'
            )
        if part != part.strip() or part.endswith("."):
            raise ValueError(f"recording name {name!r}: a part starts or ends with a space or ends with '.'")
        if len(part.encode("utf-8")) > MAX_NAME_LENGTH:
            raise ValueError(f"recording name {name!r}: a part is longer than {MAX_NAME_LENGTH} bytes")
        if part.split(".")[0].lower() in _WINDOWS_RESERVED:
            raise ValueError(f"recording name {name!r}: {part!r} is a reserved device name on Windows")
    return list(parts)


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _check_existing(path: Path, fmt: RecordingFormat, overwrite: bool, *, shown: str) -> None:
    if not os.path.lexists(path):
        return
    if not overwrite:
        raise ValueError(f"{shown!r} already exists; choose another name or pass overwrite=True to replace it")
    if fmt == "ome-tiff":
        if path.is_dir() and not path.is_symlink():
            raise ValueError(f"{shown!r} exists and is a folder, not an OME-TIFF file; it is not replaced")
        return
    # An OME-Zarr recording is a folder; replace only a folder that is a Zarr store, so that a
    # mistyped name can never delete an unrelated folder full of data.
    if path.is_symlink() or not path.is_dir():
        raise ValueError(f"{shown!r} exists and is not an OME-Zarr folder; it is not replaced")
    if not (path / "zarr.json").is_file() and not (path / ".zgroup").is_file():
        raise ValueError(f"{shown!r} exists and is not a Zarr store (no zarr.json); it is not replaced")


__all__ = [
    "RecordingFormat",
    "check_output_path",
    "choose_format",
    "format_from_suffix",
    "normalize_format",
    "resolve_recording_path",
]
