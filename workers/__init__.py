"""pubmine's model side, in two layers that import one way:

- ``workers.inference``: what the nightly job loads — model artifacts (the one loader), tagging and
  decoding, linking, relation classification, the Ray Data stages.
- ``workers.training``: what builds and scores models — corpus readers, the one training loop, NER,
  relation and normalizer training, evaluation. It may import inference; inference never imports it.

Neither imports pipeline orchestration (driver, publish, cli, beam); both use the shared contracts in
``pipeline.config``, ``pipeline.errors``, ``pipeline.schemas``, ``pipeline.storage``, ``pipeline.layout``.
"""
