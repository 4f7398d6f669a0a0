"""Data and metrics: detection datasets, COCO evaluation, corpora, tokenizers, perplexity."""
