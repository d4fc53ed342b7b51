"""What builds and scores models: corpus readers, the training loop, NER / relation / normalizer
training, evaluation. Imports ``workers.inference`` for the models it trains; never the reverse."""
