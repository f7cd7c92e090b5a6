"""Scoring a train state: one module per score family (composed by `run.py`), the numpy metric
cores, the per-dataset feature classifier, figures and traversals."""
