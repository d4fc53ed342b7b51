"""Every crash `python -m benchmarks.fuzz` found, minimized by hand to an input written by us, and
what the parser must do with it now. The fuzz target's own checks run on each (benchmarks.fuzz)."""

import io

import pytest

from benchmarks.fuzz import one_input
from pipeline.errors import ShardError
from pipeline.parse.sources import iter_records

ARTICLE = (b"<article><front><article-meta><article-id pub-id-type=\"pmc\">PMC1</article-id><title-group>"
           b"<article-title>T</article-title></title-group></article-meta></front></article>")

# (name, input, what iter_records must do: "fails: <words>" or the number of documents)
FOUND = [
    # jats crash 5a37ef62: a <pmc-articleset> whose declaration names an encoding that does not exist
    # escaped as LookupError from lxml's parser constructor (it would have failed the whole parse task)
    ("unknown-declared-encoding-articleset", b'<?xml version="1.0" encoding="utf-5"?>\n<pmc-articleset>' + ARTICLE
     + b"</pmc-articleset>", "fails: names the encoding 'utf-5', which is not one"),
    ("unknown-declared-encoding-medline", b'<?xml version="1.0" encoding="utf-5"?>\n<PubmedArticleSet>'
     b"<PubmedArticle><MedlineCitation><PMID>1</PMID></MedlineCitation></PubmedArticle></PubmedArticleSet>",
     "fails: names the encoding 'utf-5', which is not one"),
]


@pytest.mark.parametrize("name, data, outcome", FOUND, ids=[f[0] for f in FOUND])
def test_untrusted_fuzz_regression(name, data, outcome):
    for target in ("medline", "jats"):
        one_input(target, data)  # no exception but the designed ShardError, every document intact
    if outcome.startswith("fails: "):
        with pytest.raises(ShardError, match=outcome[len("fails: "):]):
            list(iter_records(io.BytesIO(data), f"{name}.xml"))
    else:
        assert sum(k == "document" for k, _ in iter_records(io.BytesIO(data), f"{name}.xml")) == int(outcome)
