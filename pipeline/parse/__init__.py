"""Parsers: MEDLINE/PubMed XML, PubTator, sentence splitting."""
