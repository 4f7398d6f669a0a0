"""Orchestration of studies: many trainings and evaluations of one family, tabulated and plotted."""
