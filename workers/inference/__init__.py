"""What the nightly job loads: artifacts, NER, linking, relation classification, the Ray Data stages.
Never imports ``workers.training`` (checked by import-linter in ``make test``)."""
