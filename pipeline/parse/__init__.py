"""Parsers: MEDLINE/PubMed XML, PMC JATS and OA packages (one entry point in ``sources``), PubTator,
sentence splitting, and the parsed document they all produce."""
