"""The language-modelling task on the shared engine (see ``zoo.engine.lm.task``)."""
