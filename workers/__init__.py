"""pubmine model side: artifacts, NER tagging and decoding, Ray Data stages, training, evaluation."""
