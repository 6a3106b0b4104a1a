"""The report pages render in headless Chromium: screenshots that are not blank and show the failed attempt."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import pytest

from tests.helpers import RETRY, WRONG, Sandbox

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="chromium is not installed (apt-get install -y chromium; .ci/run installs it)",
)


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB bytes) of an 8-bit RGB or RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = previous[i], previous[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        previous = line
        rgb = line if bpp == 3 else bytearray(v for i, v in enumerate(line) if i % 4 != 3)
        rows.append(bytes(rgb))
    return width, height, rows


def screenshot(page: Path, out: Path, profile_hint: Path) -> tuple[int, int, list[bytes]]:
    assert CHROMIUM is not None, "chromium is missing: CI must install it"
    # Chromium's singleton socket path must stay under 108 bytes: keep the profile dir short.
    profile = Path(tempfile.mkdtemp(prefix="cr-", dir="/tmp"))
    try:
        return _screenshot(page, out, profile)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _screenshot(page: Path, out: Path, profile: Path) -> tuple[int, int, list[bytes]]:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", f"--screenshot={out}", "--window-size=1200,800", page.as_uri()]
    env = {**os.environ, "TMPDIR": str(profile)}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                               start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=90)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # helpers (zygote, gpu) go with it
        except ProcessLookupError:
            pass
    assert out.exists(), f"no screenshot: {stderr.decode(errors='replace')[-2000:]}"
    return decode_png(out.read_bytes())


def _pixels(rows: list[bytes]) -> list[tuple[int, int, int, int]]:
    """(x, r, g, b) of every pixel."""
    return [(x // 3, row[x], row[x + 1], row[x + 2]) for row in rows for x in range(0, len(row), 3)]


def _red(r: int, g: int, b: int) -> bool:
    return r > 190 and g < 90 and b < 90


def _blue(r: int, g: int, b: int) -> bool:
    return r < 60 and 100 < g < 150 and b > 190


@pytest.fixture
def report(sandbox: Sandbox) -> Path:
    sandbox.scenario("retry", RETRY)
    sandbox.scenario("wrong", WRONG)
    folder = sandbox.pytester.path / "report"
    sandbox.run("--distproc-scenarios", "--distproc-report", str(folder)).assert_outcomes(passed=1, failed=1)
    sandbox.assert_clean()
    return folder


def test_retry_timeline_shows_failed_attempt_then_retry_then_aggregation(report: Path, tmp_path: Path) -> None:
    index = json.loads((report / "index.json").read_text())
    slug = next(row["slug"] for row in index["scenarios"] if row["name"] == "retry-once")
    width, height, rows = screenshot(report / slug / "timeline.html", tmp_path / "retry.png", tmp_path / "p1")
    assert (width, height) == (1200, 800)
    assert len({row for row in rows}) > 50, "the page is (nearly) one flat colour"
    pixels = _pixels(rows)
    red = [x for x, r, g, b in pixels if _red(r, g, b)]
    blue = [x for x, r, g, b in pixels if _blue(r, g, b)]
    assert len(red) > 500, "no red failed attempt on screen"
    assert len(blue) > 100, "no blue aggregation bar on screen"
    assert max(blue) > max(red), "the aggregation is drawn after the failed attempt"


def test_index_and_failed_scenario_pages_render(report: Path, tmp_path: Path) -> None:
    _, _, rows = screenshot(report / "index.html", tmp_path / "index.png", tmp_path / "p2")
    assert len(set(rows)) > 50
    assert sum(1 for _, r, g, b in _pixels(rows) if _red(r, g, b)) > 200  # FAILED badge, hatched bars
    index = json.loads((report / "index.json").read_text())
    slug = next(row["slug"] for row in index["scenarios"] if row["name"] == "wrong-total")
    _, _, rows = screenshot(report / slug / "timeline.html", tmp_path / "wrong.png", tmp_path / "p3")
    assert len(set(rows)) > 50
