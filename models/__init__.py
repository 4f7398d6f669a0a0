"""Model families: LeYOLO detectors and the reduced-nonlinearity PI-GPT transformers."""
