"""Downloads: checksums first, Range resume, refusal of bad transfers and hostile names, offline mode.

A local HTTP server (http.server in a thread, 127.0.0.1 only) serves a tiny PhysioNet-style tree.
"""
import csv
import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from eegmamba_cli.app import app
from eegmamba_cli.data.corpora.chbmit import ChbMit
from eegmamba_cli.data.corpora.chbmit import select_files as select_chbmit
from eegmamba_cli.data.corpora.siena import Siena
from eegmamba_cli.data.corpora.siena import select_files as select_siena
from eegmamba_cli.data.corpora.sleepedf import SleepEdf
from eegmamba_cli.data.corpora.sleepedf import select_files as select_sleepedf
from eegmamba_cli.data.download import DownloadError, parse_checksums, safe_relpath
from tests.fixtures.chbmit import summary_chb01, wfdb_seizures_bytes, write_edf_file

runner = CliRunner()


class Server:
    """Serves `files` ({path: bytes}); `truncate` paths send half their body; `no_range` ignores Range."""

    def __init__(self, files):
        self.files, self.log, self.truncate, self.no_range = dict(files), [], set(), False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.split("?")[0].removeprefix("/corpus/")
                server.log.append((path, self.headers.get("Range")))
                body = server.files.get(path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and not server.no_range:
                    start = int(rng.removeprefix("bytes=").rstrip("-"))
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if path in server.truncate:
                    payload = payload[: len(payload) // 2]
                self.wfile.write(payload)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/corpus/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def gets(self):
        return [p for p, _ in self.log]


@pytest.fixture
def chb_tree(tmp_path):
    """A tiny CHB-MIT tree: two EDFs with seizures, summaries, .seizures, index files, SHA256SUMS.txt."""
    src = tmp_path / "src"
    (src / "chb01").mkdir(parents=True)
    write_edf_file(src / "chb01" / "chb01_03.edf", "full", 8)
    write_edf_file(src / "chb01" / "chb01_04.edf", "full", 8)
    files = {
        "chb01/chb01_03.edf": (src / "chb01" / "chb01_03.edf").read_bytes(),
        "chb01/chb01_04.edf": (src / "chb01" / "chb01_04.edf").read_bytes(),
        "chb01/chb01_01.edf": b"not needed by default",
        "chb01/chb01-summary.txt": summary_chb01().encode(),
        "chb01/chb01_03.edf.seizures": wfdb_seizures_bytes([(2, 3)]),
        "RECORDS": b"chb01/chb01_01.edf\nchb01/chb01_03.edf\nchb01/chb01_04.edf\n",
        "RECORDS-WITH-SEIZURES": b"chb01/chb01_03.edf\nchb01/chb01_04.edf\n\n",
        "SUBJECT-INFO": b"Case\tGender\tAge (years)\n\nchb01\tF\t11\n",
    }
    sums = "".join(f"{hashlib.sha256(b).hexdigest()} {p}\n" for p, b in files.items())
    files["SHA256SUMS.txt"] = sums.encode()
    server = Server(files)
    server.thread.start()
    yield server
    server.httpd.shutdown()


def download(server, root, *extra):
    result = runner.invoke(app, ["download", "chbmit", "--root", str(root), "--base-url", server.url,
                                 "--no-progress", *extra])
    assert "Traceback" not in result.output, result.output
    return result


def test_download_verify_rerun_and_offline(chb_tree, tmp_path):
    root = tmp_path / "data"
    result = download(chb_tree, root)
    assert result.exit_code == 0, result.output
    target = root / "raw" / "chbmit"
    for name in ("chb01/chb01_03.edf", "chb01/chb01_04.edf", "chb01/chb01-summary.txt",
                 "chb01/chb01_03.edf.seizures", "RECORDS-WITH-SEIZURES", "SUBJECT-INFO"):
        assert (target / name).read_bytes() == chb_tree.files[name]
    assert not (target / "chb01" / "chb01_01.edf").exists()  # not in the default (seizure) subset
    assert chb_tree.gets()[0] == "SHA256SUMS.txt"
    assert not list(target.rglob("*.part"))
    chb_tree.log.clear()
    result = download(chb_tree, root)
    assert result.exit_code == 0 and chb_tree.gets() == ["SHA256SUMS.txt"]  # everything verified locally
    assert "0 downloaded" in result.output
    chb_tree.log.clear()
    result = download(chb_tree, root, "--offline")
    assert result.exit_code == 0 and chb_tree.log == []  # offline: no request at all
    (target / "chb01" / "chb01_04.edf").unlink()
    result = download(chb_tree, root, "--offline")
    assert result.exit_code == 1 and chb_tree.log == []
    assert "chb01/chb01_04.edf is missing, and --offline forbids downloading it" in result.output


def test_resume_with_range_and_server_ignoring_range(chb_tree, tmp_path):
    target = tmp_path / "data" / "raw" / "chbmit"
    (target / "chb01").mkdir(parents=True)
    body = chb_tree.files["chb01/chb01_03.edf"]
    (target / "chb01" / "chb01_03.edf.part").write_bytes(body[:1000])
    result = download(chb_tree, tmp_path / "data")
    assert result.exit_code == 0, result.output
    assert ("chb01/chb01_03.edf", "bytes=1000-") in chb_tree.log
    assert (target / "chb01" / "chb01_03.edf").read_bytes() == body
    # a server that answers 200 to a Range request: the .part is restarted, not appended to
    (target / "chb01" / "chb01_04.edf").unlink()
    (target / "chb01" / "chb01_04.edf.part").write_bytes(b"x" * 500)
    chb_tree.no_range = True
    result = runner.invoke(app, ["download", "chbmit", "--root", str(tmp_path / "data"), "--base-url",
                                 chb_tree.url])  # with progress bars
    assert result.exit_code == 0 and "Traceback" not in result.output
    assert (target / "chb01" / "chb01_04.edf").read_bytes() == chb_tree.files["chb01/chb01_04.edf"]


def test_wrong_checksum_refused_nothing_left(chb_tree, tmp_path):
    chb_tree.files["chb01/chb01_04.edf"] = b"tampered" + chb_tree.files["chb01/chb01_04.edf"][8:]
    result = download(chb_tree, tmp_path / "data")
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if "error:" in line]
    assert len(errors) == 1 and "chb01/chb01_04.edf: checksum mismatch" in errors[0]
    folder = tmp_path / "data" / "raw" / "chbmit" / "chb01"
    assert not (folder / "chb01_04.edf").exists() and not (folder / "chb01_04.edf.part").exists()


def test_truncated_transfer_refused_nothing_left(chb_tree, tmp_path):
    chb_tree.truncate.add("chb01/chb01_03.edf")
    result = download(chb_tree, tmp_path / "data")
    assert result.exit_code == 1
    assert "chb01/chb01_03.edf: truncated transfer (" in result.output and "nothing kept" in result.output
    folder = tmp_path / "data" / "raw" / "chbmit" / "chb01"
    assert not (folder / "chb01_03.edf").exists() and not (folder / "chb01_03.edf.part").exists()


@pytest.mark.parametrize("name", ["../evil.edf", "/etc/passwd", "chb01\\x.edf", "chb01/../../x.edf",
                                  "chb01/./a.edf", "a\x00b", ""])
def test_hostile_names_refuse_the_whole_list(chb_tree, tmp_path, name):
    digest = "0" * 64
    chb_tree.files["SHA256SUMS.txt"] += f"{digest} {name}\n".encode()
    result = download(chb_tree, tmp_path / "data")
    assert result.exit_code == 1
    assert "refusing the whole list" in result.output or "not '<sha256> <path>'" in result.output
    target = tmp_path / "data" / "raw" / "chbmit"
    assert not any(p.is_file() for p in target.rglob("*"))  # not even SHA256SUMS.txt is saved
    assert not (tmp_path / "data" / "raw" / "evil.edf").exists()


def test_symlink_escape_refused(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "outside").mkdir()
    (target / "chb01").symlink_to(tmp_path / "outside")
    with pytest.raises(DownloadError, match="resolves outside"):
        safe_relpath("chb01/chb01_03.edf", target)
    assert safe_relpath("chb02/chb02_16+.edf", target) == "chb02/chb02_16+.edf"


def test_real_checksum_lists_and_selection(realdata, tmp_path):
    chb = parse_checksums((realdata / "chb-mit/SHA256SUMS.txt").read_text(), tmp_path)
    assert len(chb) == 856
    listed = (realdata / "chb-mit/RECORDS-WITH-SEIZURES").read_text()
    chosen = select_chbmit(chb, None, lambda name: listed, ChbMit.Options())
    edfs = [c for c in chosen if c.endswith(".edf")]
    assert len(edfs) == 141 - 12  # chb24's 12 seizure files are not used
    assert "chb02/chb02_16+.edf.seizures" in chosen and "chb01/chb01-summary.txt" in chosen
    # index files, summary, 7 pairs
    assert len(select_chbmit(chb, {"1"}, lambda name: listed, ChbMit.Options())) == 4 + 1 + 7 + 7

    sle = parse_checksums((realdata / "sleep-edf/SHA256SUMS.txt").read_text(), tmp_path)
    assert len(sle) == 398
    v1 = (realdata / "sleep-edf/RECORDS-v1").read_text()
    chosen = select_sleepedf(sle, None, lambda name: v1, SleepEdf.Options())
    pairs = [c for c in chosen if c.startswith("sleep-cassette/")]
    assert len(pairs) == 78 and "sleep-cassette/SC4001EC-Hypnogram.edf" in pairs
    assert "sleep-cassette/SC4132E0-PSG.edf" not in pairs
    # the derived FILE-SIZES.tsv agrees with the official checksums and sizes the SleepEDF-20 download
    with open(realdata / "sleep-edf/FILE-SIZES.tsv", newline="") as fh:
        sizes = {row["file"]: row for row in csv.DictReader(fh, delimiter="\t")}
    assert all(sizes[p]["sha256"] == sle[p] for p in pairs)
    total = sum(int(sizes[p]["size_bytes"]) for p in pairs)
    assert 1.5e9 < total < 2.5e9
    assert select_sleepedf(sle, {"13"}, lambda name: v1, SleepEdf.Options())[-2:] == [
        "sleep-cassette/SC4131E0-PSG.edf", "sleep-cassette/SC4131EC-Hypnogram.edf"]


def test_siena_selection_skips_pn10_unless_asked(tmp_path):
    names = ["RECORDS", "PN00/PN00-1.edf", "PN00/Seizures-list-PN00.txt", "PN10/PN10-1.edf", "PN16/PN16-2.edf"]
    sums = {n: "0" * 64 for n in names}
    assert select_siena(sums, None, None, Siena.Options()) == [
        "RECORDS", "PN00/PN00-1.edf", "PN00/Seizures-list-PN00.txt", "PN16/PN16-2.edf"]
    assert select_siena(sums, {"PN10"}, None, Siena.Options()) == ["RECORDS", "PN10/PN10-1.edf"]


def test_agreement_corpora_print_instructions(tmp_path):
    result = runner.invoke(app, ["download", "deap", "--root", str(tmp_path)])
    assert result.exit_code == 0 and "nothing downloaded" in result.output
    result = runner.invoke(app, ["download", "custom", "--root", str(tmp_path)])
    assert result.exit_code == 1 and "nothing to download" in result.output


@pytest.mark.parametrize("spelling", [["--all-files"], ["--option", "files=all"], ["-o", "files=all"]])
def test_all_files_is_the_corpus_option_files(chb_tree, tmp_path, spelling):
    """`--all-files` is a shorthand for chbmit's option files=all, the option preprocess reads too."""
    root = tmp_path / "data"
    result = download(chb_tree, root, *spelling)
    assert result.exit_code == 0, result.output
    assert (root / "raw" / "chbmit" / "chb01" / "chb01_01.edf").read_bytes() == chb_tree.files["chb01/chb01_01.edf"]


def test_download_options_are_checked_like_preprocess_options(chb_tree, tmp_path):
    result = download(chb_tree, tmp_path / "data", "--option", "files=some")
    assert result.exit_code == 1
    assert "chbmit: option files must be one of seizures, all, not 'some'" in result.output
    result = download(chb_tree, tmp_path / "data", "--option", "nope=1")
    assert result.exit_code == 1 and "chbmit: unknown option(s) nope; known: crosscheck, files," in result.output
