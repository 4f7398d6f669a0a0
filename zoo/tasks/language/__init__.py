"""The language-modelling task: perplexity evaluation, the training task and its reports, the export graph."""
