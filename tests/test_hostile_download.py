"""Downloads against a hostile target folder and a lying server (127.0.0.1 only).

test_data_download.py covers hostile names in SHA256SUMS.txt, a tampered file (checksum mismatch), a
transfer cut in half, Range resume and a dir-symlink at the parser level. This adds, through
`eegmamba download`:

* symlinks planted in the target folder that point outside it (a folder, a final file, the `.part`
  file, the checksum list, the verified-stamps file): nothing is ever written through them;
* a server that lies about Content-Length (longer or shorter than the body), sends another file or an
  HTML error page with status 200, or answers a Range request with a different range: refused with one
  line, nothing written outside the target, no partial files left behind.
"""
from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eegmamba_cli.app import app

runner = CliRunner()
EDF = b"0       " + bytes(range(256)) * 40  # stands in for an EDF: only its bytes and sha256 matter
FILES = {
    "RECORDS": b"chb01/chb01_03.edf\n",
    "RECORDS-WITH-SEIZURES": b"chb01/chb01_03.edf\n",
    "chb01/chb01-summary.txt": b"File Name: chb01_03.edf\nNumber of Seizures in File: 0\n",
    "chb01/chb01_03.edf": EDF,
}
SUMS = "".join(f"{hashlib.sha256(b).hexdigest()} {p}\n" for p, b in FILES.items()).encode()


class LyingServer:
    """Serves FILES; `lies[path]` changes what that path's response says or sends."""

    def __init__(self):
        self.lies: dict[str, str] = {}
        self.log: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.removeprefix("/corpus/")
                server.log.append((path, self.headers.get("Range")))
                body = SUMS if path == "SHA256SUMS.txt" else FILES.get(path)
                if body is None:
                    self.send_error(404)
                    return
                lie = server.lies.get(path, "")
                length, status, headers = len(body), 200, {}
                if lie == "longer":
                    length += 1000  # promises more than it sends
                elif lie == "shorter":
                    length -= 1000  # the client reads only this much
                elif lie == "other-file":
                    body = body[::-1]
                    length = len(body)
                elif lie == "html":
                    body = b"<html><body>Service temporarily unavailable</body></html>"
                    length = len(body)
                elif lie == "wrong-range" and self.headers.get("Range"):
                    status, headers = 206, {"Content-Range": f"bytes 7-{len(body) - 1}/{len(body)}"}
                    body = body[7:]
                    length = len(body)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/corpus/"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


@pytest.fixture
def server():
    s = LyingServer()
    yield s
    s.httpd.shutdown()


@pytest.fixture
def places(tmp_path):
    """The data root, and an `outside` folder holding a file that must never change."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_bytes(b"precious")
    return tmp_path / "data", outside


def download(server, root: Path):
    result = runner.invoke(app, ["download", "chbmit", "--root", str(root), "--base-url", server.url, "--no-progress"])
    assert "Traceback" not in result.output, result.output
    return result


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(target: Path) -> list[str]:
    return sorted(p.relative_to(target).as_posix() for p in target.rglob("*")
                  if p.name.endswith((".part", ".tmp")))


# --- symlinks already in the target folder ------------------------------------------------------------
@pytest.mark.parametrize("planted", ["folder", "final file", "part file", "checksum list", "stamps file"])
def test_symlinks_pointing_outside_are_never_written_through(server, places, planted):
    root, outside = places
    target = root / "raw" / "chbmit"
    (target / "chb01").mkdir(parents=True)
    link = {"folder": target / "chb01", "final file": target / "chb01" / "chb01_03.edf",
            "part file": target / "chb01" / "chb01_03.edf.part", "checksum list": target / "SHA256SUMS.txt",
            "stamps file": target / ".eegmamba-verified.json"}[planted]
    if planted == "folder":
        link.rmdir()
        link.symlink_to(outside, target_is_directory=True)
    else:
        link.symlink_to(outside / "precious.txt")
    before = snapshot(outside)
    result = download(server, root)
    assert snapshot(outside) == before  # nothing written through the link
    if planted in ("folder", "final file"):
        lines = error_lines(result.output)
        assert result.exit_code == 1 and len(lines) == 1 and "resolves outside" in lines[0], result.output
    elif planted == "part file":
        lines = error_lines(result.output)
        assert result.exit_code == 1 and len(lines) == 1, result.output
        assert "chb01_03.edf.part is a symlink or not a regular file; refusing to write through it" in lines[0]
        assert not (target / "chb01" / "chb01_03.edf").exists()
    else:  # the list and the stamps are replaced by real files, never written through
        assert result.exit_code == 0, result.output
        assert not link.is_symlink() and link.is_file()
        assert (target / "chb01" / "chb01_03.edf").read_bytes() == EDF


# --- a lying server ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("lie,message", [
    ("longer", "chb01/chb01_03.edf: truncated transfer"),
    ("shorter", "chb01/chb01_03.edf: checksum mismatch"),
    ("other-file", "chb01/chb01_03.edf: checksum mismatch"),
    ("html", "chb01/chb01_03.edf: checksum mismatch"),
])
def test_a_lying_server_is_refused_and_nothing_is_left(server, places, lie, message):
    root, outside = places
    server.lies["chb01/chb01_03.edf"] = lie
    result = download(server, root)
    lines = error_lines(result.output)
    assert result.exit_code == 1 and len(lines) == 1 and message in lines[0], result.output
    assert "nothing kept" in lines[0]
    target = root / "raw" / "chbmit"
    assert not (target / "chb01" / "chb01_03.edf").exists() and leftovers(target) == []
    assert snapshot(outside) == {"precious.txt": b"precious"}
    assert {p.relative_to(root).parts[:2] for p in root.rglob("*") if p.is_file()} <= {("raw", "chbmit")}
    server.lies.clear()  # an honest server afterwards: the same command completes
    assert download(server, root).exit_code == 0 and (target / "chb01" / "chb01_03.edf").read_bytes() == EDF


def test_a_range_answered_with_another_range_is_not_appended(server, places):
    """Resuming a .part: a 206 for another range than asked must not be glued onto the .part."""
    root, _ = places
    target = root / "raw" / "chbmit" / "chb01"
    target.mkdir(parents=True)
    (target / "chb01_03.edf.part").write_bytes(EDF[:1000])
    server.lies["chb01/chb01_03.edf"] = "wrong-range"
    result = download(server, root)
    assert ("chb01/chb01_03.edf", "bytes=1000-") in server.log
    lines = error_lines(result.output)
    assert result.exit_code == 1 and len(lines) == 1 and "checksum mismatch" in lines[0], result.output
    assert leftovers(root) == [] and not (target / "chb01_03.edf").exists()


def test_a_checksum_list_served_twice_differently_keeps_the_verified_file(server, places):
    """A verified file is never replaced by what a later, different server sends under the same name."""
    root, _ = places
    assert download(server, root).exit_code == 0
    target = root / "raw" / "chbmit"
    server.lies["chb01/chb01_03.edf"] = "other-file"
    assert download(server, root).exit_code == 0  # present and verified locally: not fetched again
    assert (target / "chb01" / "chb01_03.edf").read_bytes() == EDF
    assert [p for p, _ in server.log].count("chb01/chb01_03.edf") == 1
